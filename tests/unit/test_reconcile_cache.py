"""The operator's cache keys everything by UID, never by name (issue 11, items 3, 8 and 12), without a cluster.

Aspects covered:
- a pod is a Job's only through its controller ownerReference to that Job's UID: a `kubectl debug
  --copy-to` copy with the same labels is never cached, never the operation's latest pod;
- the pods of an earlier operation of the same name (and its Job of the same name) are not the
  re-created operation's, even while that Job's tombstone or its pods linger in the cache; an orphaned
  Job (no ownerReference) is the operation's only if its `dops.io/operation-uid` label says so;
- a pod event older than the cached pod (resourceVersion) never replaces it;
- a 404 on a Job write turns the cached Job into a tombstone only if it is still the Job written (UID);
- a pod found gone by the resync becomes a tombstone; sweeping a Job's tombstone forgets its pods;
- `remove_operation` with a UID never removes a newer operation of the same name.
"""

from __future__ import annotations

import pytest

from dops.domain import reconciling
from dops.domain.reconciling import compact_operation, slim_operation
from dops.reconcile.cache import Cache
from tests.workload_builders import job, operation, pod


def test_a_pod_without_the_jobs_controller_reference_is_never_claimed() -> None:
    cache = Cache()
    op = operation(state="running")
    cache.put_operation(op)
    cache.put_job(job(active=1))
    assert cache.put_pod(pod("op-1-abcde", running=True)) == ("ns", "op")
    copy = pod("op-1-debug", running=True, created="2026-01-01T00:10:00Z", job_uid=None)  # same labels, newer
    assert cache.put_pod(copy) is None
    foreign = pod("op-1-other", running=True, created="2026-01-01T00:10:00Z", job_uid="uid-another-job")
    cache.put_pod(foreign)  # controlled by another Job (say, of an earlier operation with the same name)
    assert [p["name"] for p in cache.pods_for(op)] == ["op-1-abcde"]


def test_a_recreated_operation_does_not_inherit_the_old_jobs_and_pods() -> None:
    cache = Cache()
    old = operation(state="completed", uid="uid-old")
    cache.put_operation(old)
    cache.put_job(job(owner_uid="uid-old", uid="uid-old-job", succeeded=1))
    cache.put_pod(pod(phase="Succeeded", exit_code=0, job_uid="uid-old-job"))
    assert len(cache.pods_for(old)) == 1
    assert cache.remove_operation(("ns", "op"), "uid-old") is not None
    # The old Job's pod and the old Job's deletion arrive late, after the operation is gone.
    cache.put_pod(pod(phase="Succeeded", exit_code=0, job_uid="uid-old-job"))
    cache.delete_job(job(owner_uid="uid-old", uid="uid-old-job", succeeded=1))
    new = operation(state="scheduled", uid="uid-new", rv="3")
    cache.put_operation(new)
    assert cache.job_for(new) is None and cache.pods_for(new) == []
    cache.put_job(job(owner_uid="uid-new", uid="uid-new-job", active=1))  # same name op-1, new UID
    assert cache.job_for(new)["uid"] == "uid-new-job"  # type: ignore[index]
    assert cache.pods_for(new) == []  # the old pod (same Job name) is not the new Job's
    cache.put_pod(pod("op-1-fghij", running=True, job_uid="uid-new-job"))
    assert [p["name"] for p in cache.pods_for(new)] == ["op-1-fghij"]


def test_pod_events_never_go_back_in_time() -> None:
    cache = Cache()
    op = operation(state="running")
    cache.put_operation(op)
    cache.put_job(job(active=1))
    done = pod(phase="Failed", exit_code=3)
    done["metadata"]["resourceVersion"] = "30"
    earlier = pod(running=True)
    earlier["metadata"]["resourceVersion"] = "25"
    cache.put_pod(done)
    cache.put_pod(earlier)  # e.g. from a listing taken before the pod ended
    (cached,) = cache.pods_for(op)
    assert cached["phase"] == "Failed"


def test_a_job_write_that_met_404_makes_a_tombstone_of_that_job_only() -> None:
    cache = Cache()
    op = operation(state="running")
    cache.put_operation(op)
    cache.put_job(job(active=1))
    assert cache.job_gone("ns", "op-1", "uid-some-other-job") is None  # not the Job written: kept
    assert not cache.job_for(op)["gone"]  # type: ignore[index]
    assert cache.job_gone("ns", "op-1", "uid-job") == ("ns", "op")
    assert cache.job_for(op)["gone"]  # type: ignore[index]
    assert cache.job_gone("ns", "op-1", "uid-job") is None  # already a tombstone


def test_pods_found_gone_and_swept_with_their_job() -> None:
    cache = Cache()
    op = operation(state="running")
    cache.put_operation(op)
    cache.put_job(job(active=1))
    cache.put_pod(pod(running=True))
    assert cache.pod_gone("ns", "op-1-abcde", "uid-op-1-abcde") == ("ns", "op")
    (tomb,) = cache.pods_for(op)
    assert tomb["gone"] and tomb["container"]["state"]["running"]
    cache.delete_job(job())
    assert cache.sweep(max_age=0) == 2
    assert cache.jobs == {} and cache.pods == {}


def test_remove_operation_checks_the_uid() -> None:
    cache = Cache()
    cache.put_operation(operation(uid="uid-new"))
    assert cache.remove_operation(("ns", "op"), "uid-old") is None
    assert cache.operation_uid(("ns", "op")) == "uid-new"
    assert cache.remove_operation(("ns", "op"), "uid-new") is not None
    assert cache.operation_uid(("ns", "op")) is None


def test_an_orphaned_job_belongs_to_the_operation_its_uid_label_names() -> None:
    cache = Cache()
    new = operation(state="scheduled", uid="uid-new")
    cache.put_operation(new)
    orphan = job(owner_uid="uid-old", uid="uid-old-job", succeeded=1)
    orphan["metadata"]["ownerReferences"] = []  # `kubectl delete --cascade=orphan` of the earlier operation
    orphan["metadata"]["labels"]["dops.io/operation-uid"] = "uid-old"
    cache.put_job(orphan)
    assert cache.job_for(new) is None
    orphan["metadata"]["labels"]["dops.io/operation-uid"] = "uid-new"
    orphan["metadata"]["resourceVersion"] = "21"
    cache.put_job(orphan)
    assert cache.job_for(new) is not None


class _CountingDict(dict):  # type: ignore[type-arg]
    """A dict that counts full scans (`items`, `values`, iteration): what a per-event scan would do."""

    scans = 0

    def items(self):  # type: ignore[no-untyped-def,override]
        type(self).scans += 1
        return super().items()

    def values(self):  # type: ignore[no-untyped-def,override]
        type(self).scans += 1
        return super().values()

    def __iter__(self):  # type: ignore[no-untyped-def]
        type(self).scans += 1
        return super().__iter__()


def test_removing_an_operation_drops_its_jobs_without_scanning_every_job() -> None:
    """issue 15: removing an operation (a deletion, a TTL sweep of thousands) looks at its own Jobs only: a scan of
    every cached Job per removal is quadratic. Its Jobs and their pods go; another operation's stay."""
    cache = Cache()
    cache.jobs = _CountingDict()
    for i in range(50):
        cache.put_operation(operation(f"op{i}", state="completed", uid=f"uid-{i}", job=f"op{i}-1"))
        cache.put_job(job(f"op{i}-1", operation=f"op{i}", owner_uid=f"uid-{i}", uid=f"uid-job-{i}", succeeded=1))
        cache.put_pod(pod(f"op{i}-1-abcde", f"op{i}-1", phase="Succeeded", exit_code=0, job_uid=f"uid-job-{i}"))
    _CountingDict.scans = 0
    for i in range(0, 50, 2):
        assert cache.remove_operation(("ns", f"op{i}"), f"uid-{i}") is not None
    assert _CountingDict.scans == 0, "a removal scanned every cached Job"
    assert sorted(cache.jobs) == sorted(("ns", f"op{i}-1") for i in range(1, 50, 2))
    kept = cache.ops[("ns", "op1")]
    assert cache.job_for(kept) is not None and len(cache.pods_for(kept)) == 1
    assert "uid-job-0" not in cache.pods


def test_a_job_replaced_by_another_operations_job_of_the_same_name_moves_in_the_owner_index() -> None:
    """The owner index follows a Job name reused by a re-created operation: removing the old operation then
    leaves the new one's Job alone."""
    cache = Cache()
    cache.put_operation(operation(state="completed", uid="uid-old"))
    cache.put_job(job(owner_uid="uid-old", uid="uid-old-job", succeeded=1))
    cache.put_job(job(owner_uid="uid-new", uid="uid-new-job", active=1))  # same name op-1, another owner
    assert cache.remove_operation(("ns", "op"), "uid-old") is not None
    assert cache.jobs[("ns", "op-1")]["uid"] == "uid-new-job"


def test_unadmitted_operations_are_indexed_per_namespace() -> None:
    """issue 15: a DelegationTarget event re-reconciles the namespace's operations not yet running, found by an
    index kept as states change (not by a scan of every cached operation)."""
    cache = Cache()
    cache.put_operation(operation("a", state="queued", uid="ua", job=None))
    cache.put_operation(operation("b", state="scheduled", uid="ub"))
    cache.put_operation(operation("c", state="running", uid="uc"))
    cache.put_operation(operation("d", "other", state="queued", uid="ud", job=None))
    cache.put_operation(operation("e", state=None, uid="ue", job=None))
    assert cache.unadmitted_in("ns") == [("ns", "a"), ("ns", "b"), ("ns", "e")]
    cache.put_operation(operation("b", state="running", uid="ub", rv="11"))  # admitted and claimed since
    cache.remove_operation(("ns", "a"), "ua")
    assert cache.unadmitted_in("ns") == [("ns", "e")]
    assert cache.unadmitted_in("other") == [("other", "d")]
    assert cache.unadmitted_in("none") == []


def test_a_settled_operation_is_cached_slim_without_a_full_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 15: at start-up the operator lists every stored operation, most of them finished and processed: each is
    kept in its slim form, built straight from the object (the same slim form as before) without first deep-copying
    its whole status into the compact form (that copy was most of the start-up listing's CPU at 100,000)."""
    stamp = "2026-01-01T00:00:05Z"
    processed = {"status": "True", "reason": "Completed", "message": "done", "lastTransitionTime": stamp}
    settled = operation(
        state="completed",
        completedAt=stamp,
        result={"result": {"big": "x" * 1000}},
        conditions=[{"type": "Succeeded", **processed}, {"type": "Running", **processed, "status": "False"}],
    )
    expected = slim_operation(compact_operation(settled))
    copies: list[object] = []
    real_deepcopy = reconciling.copy.deepcopy

    def counting_deepcopy(value: object, *args: object) -> object:
        copies.append(value)
        return real_deepcopy(value, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(reconciling.copy, "deepcopy", counting_deepcopy)
    cache = Cache()
    assert cache.put_operation(settled) == expected
    assert copies == [], "a settled operation was deep-copied on its way into the cache"
    running = operation(state="running")
    running["metadata"]["name"] = "other"
    compact = cache.put_operation(running)
    assert compact is not None and "slim" not in compact, "an unsettled operation keeps its compact form"
