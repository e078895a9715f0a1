"""The operator's reconcile: cache of watched objects, one level-triggered reconcile per operation, API gateway.

- `cache`: compact operations, targets, Jobs and pods (with tombstones), fed by watch events;
- `engine.Reconciler`: intake from events, the work queue, plan execution (`dops.domain.reconciling.plan`);
- `gateway.Gateway`: the blocking API calls (CAS status patches, Jobs, logs, events);
- `workqueue.WorkQueue`: keyed, deduplicating, delayed work queue with bounded retries;
- `metrics.Metrics`: Prometheus metrics.
"""

from __future__ import annotations

from .cache import Cache
from .engine import Admission, Reconciler
from .gateway import Gateway
from .metrics import Metrics
from .workqueue import WorkQueue

__all__ = ["Admission", "Cache", "Gateway", "Metrics", "Reconciler", "WorkQueue"]
