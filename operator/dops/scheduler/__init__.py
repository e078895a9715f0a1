"""Admission of queued operations: FIFO per delegation target (by priority) under `maxConcurrent` and a global cap.

All state is in memory (`AdmissionQueue`), fed from the operator's watch events: no per-operation
timers and no list calls per event. The scheduler only *chooses* (reserves) operations; the operator's
reconcile performs the admission itself (CAS `queued→scheduled`, then the Job), so admission and every
other write for an operation go through the same per-operation serialization.
"""

from __future__ import annotations

from .queue import AdmissionQueue, QueueStats
from .runner import Scheduler

__all__ = ["AdmissionQueue", "QueueStats", "Scheduler"]
