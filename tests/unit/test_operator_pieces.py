"""The operator's in-memory cache, log archive and liveness probe, without a cluster.

Aspects covered:
- Cache: an event older than the cached object (resourceVersion) never replaces it; settled operations
  are kept slim; a deleted Job becomes a tombstone; a Job the operator deleted stays "being deleted" even
  when older events arrive; tombstones are swept; Jobs of an older operation with the same name are not
  taken for the current one's;
- LogArchive: directory layout `<ns>/<op>/<attempt>-<pod>.log`, atomic writes, fsspec URLs
  (`memory://`), one-line errors naming the location;
- the liveness probe fails past DOPS_WATCH_STALE_SECONDS and reports the watch age otherwise.
"""

from __future__ import annotations

import datetime as dt
import types
from pathlib import Path

import kopf
import pytest

from dops.domain.settings import OperatorSettings
from dops.handlers import operator as handlers
from dops.logs import ArchiveError, LogArchive, archive_key
from dops.reconcile.cache import Cache, newer
from tests.workload_builders import job, operation, pod


def test_cache_never_goes_back_in_time() -> None:
    cache = Cache()
    assert cache.put_operation(operation(rv="10", state="running")) is not None
    assert cache.put_operation(operation(rv="9", state="scheduled")) is None
    assert cache.ops[("ns", "op")]["status"]["runState"] == "running"
    assert cache.put_operation(operation(rv="11", state="completed", completedAt="2026-01-01T00:00:01Z")) is not None
    recreated = operation(rv="3", state="queued", uid="another-uid")  # deleted and created again: new uid
    assert cache.put_operation(recreated) is not None
    assert newer("12", "9") and not newer("9", "12") and newer("abc", "9")


def test_settled_operations_are_kept_slim() -> None:
    cache = Cache()
    op = operation(state="completed", completedAt="2026-01-01T00:00:01Z", result={"error": "x" * 1000})
    op["status"]["conditions"] = [
        {
            "type": "Succeeded",
            "status": "True",
            "reason": "Completed",
            "message": "m" * 500,
            "lastTransitionTime": "2026-01-01T00:00:02Z",
        }
    ]
    compact = cache.put_operation(op)
    assert compact is not None and compact.get("slim")
    assert "result" not in compact["status"]
    assert compact["status"]["conditions"][0]["status"] == "True"
    assert "message" not in compact["status"]["conditions"][0]


def test_job_tombstones_and_operator_deletions() -> None:
    cache = Cache()
    op = operation(state="running")
    cache.put_operation(op)
    cache.put_job(job(active=1))
    assert cache.job_for(op) is not None and not cache.job_for(op)["deletionTimestamp"]  # type: ignore[index]
    cache.mark_job_deleted("ns", "op-1", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    later = job(active=1)
    later["metadata"]["resourceVersion"] = "99"  # written before the delete, seen after it
    cache.put_job(later)
    assert cache.job_for(op)["deletionTimestamp"]  # type: ignore[index]
    assert cache.delete_job(job()) == ("ns", "op")
    assert cache.job_for(op)["gone"]  # type: ignore[index]
    assert cache.sweep(max_age=0) == 1
    assert cache.job_for(op) is None
    cache.put_job(job(owner_uid="older-operation"))
    assert cache.job_for(op) is None  # same name, another operation's Job


def test_pod_tombstones_keep_the_last_known_state() -> None:
    cache = Cache()
    op = operation(state="running")
    cache.put_operation(op)
    cache.put_job(job(active=1))
    assert cache.put_pod(pod(phase="Failed", exit_code=137)) == ("ns", "op")
    cache.delete_pod(pod(phase="Failed", exit_code=137))
    (gone,) = cache.pods_for(op)
    assert gone["gone"] and gone["container"]["state"]["terminated"]["exitCode"] == 137


def test_log_archive_directory(tmp_path: Path) -> None:
    archive = LogArchive(str(tmp_path / "logs"))
    key = archive_key("team-a", "dop-123-echo", 2, "dop-123-echo-2-abcde")
    assert key == "team-a/dop-123-echo/2-dop-123-echo-2-abcde.log"
    path, size = archive.store(key, iter([b"line 1\n", b"line 2\n"]))
    assert path == str(tmp_path / "logs" / key)
    assert size == 14
    assert archive.read(path) == b"line 1\nline 2\n"
    assert not list((tmp_path / "logs" / "team-a" / "dop-123-echo").glob(".dops-*"))  # no partial files left
    archive.delete(path)
    assert not Path(path).exists()
    file_url = LogArchive(f"file://{tmp_path}/other")
    stored, _ = file_url.store(key, iter([b"x"]))
    assert Path(stored).read_bytes() == b"x"


def test_log_archive_fsspec_url() -> None:
    pytest.importorskip("fsspec")
    archive = LogArchive("memory://dops-test-archive")
    path, size = archive.store(archive_key("ns", "op", 1, "pod"), iter([b"hello ", b"archive"]))
    assert path == "memory://dops-test-archive/ns/op/1-pod.log"
    assert size == 13
    assert archive.read(path) == b"hello archive"


def test_log_archive_errors_are_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(ArchiveError) as caught:
        LogArchive(str(blocker)).store("ns/op/1-pod.log", iter([b"x"]))
    assert str(blocker) in str(caught.value) and "\n" not in str(caught.value)

    def failing() -> object:
        yield b"partial"
        raise OSError("stream broken")

    with pytest.raises(ArchiveError, match="stream broken"):
        LogArchive(str(tmp_path / "ok")).store("ns/op/1-pod.log", failing())  # type: ignore[arg-type]
    assert not (tmp_path / "ok" / "ns" / "op" / "1-pod.log").exists()
    with pytest.raises(ArchiveError, match="cannot read archived log"):
        LogArchive(str(tmp_path)).read(str(tmp_path / "missing.log"))
    with pytest.raises(ArchiveError, match="DOPS_LOG_ARCHIVE"):
        LogArchive("")


def test_liveness_probe_fails_when_the_watch_is_stale() -> None:
    """Issue 5: the liveness probe fails when no watch event or bookmark arrived for watch_stale_seconds."""
    age = {"value": 5.0}
    fake = types.SimpleNamespace(settings=OperatorSettings(watch_stale_seconds=300), watch_age=lambda: age["value"])
    memo = {"dops_runtime": fake}
    original = handlers.runtime_of
    handlers.runtime_of = lambda m: m["dops_runtime"]  # type: ignore[assignment]
    try:
        assert handlers.watch_freshness(memo=memo) == 5.0  # type: ignore[arg-type]
        age["value"] = 301.0
        with pytest.raises(kopf.PermanentError, match="no watch event or bookmark for 301 s"):
            handlers.watch_freshness(memo=memo)  # type: ignore[arg-type]
    finally:
        handlers.runtime_of = original  # type: ignore[assignment]
