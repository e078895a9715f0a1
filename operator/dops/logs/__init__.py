"""Archived run logs: where the operator stores a worker pod's log before the pod can be garbage-collected.

`LogArchive(location)` writes and reads logs under a directory (a PVC path by default) or an fsspec
URL such as `s3://bucket/dops-logs` (needs the optional `fsspec` extra plus the protocol's driver,
e.g. `s3fs`). Layout: `<location>/<namespace>/<operation>/<attempt>-<pod>.log`.
"""

from __future__ import annotations

from .archive import ArchiveError, LogArchive, archive_key

__all__ = ["ArchiveError", "LogArchive", "archive_key"]
