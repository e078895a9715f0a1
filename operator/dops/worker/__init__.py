"""The dops worker: `dops worker run NS/NAME` (the Job container) and `dops worker launch` (the external executor).

- `run_operation(ref, namespace=None) -> int`: claim `scheduled → running`, run the operator, record
  the outcome, write the termination message; returns the exit code (see `dops.worker.run`).
- `launch(target, monitor, namespace, once, interval, limit) -> int`: the FiftyOne-style launcher for
  DelegationTargets with `mode: external` (see `dops.worker.launch`).

`python -m dops.worker run|launch ...` runs them without the CLI (monitored executions start their
child process this way).
"""

from __future__ import annotations

from .launch import launch
from .run import run_operation

__all__ = ["launch", "run_operation"]
