"""The operator's cache never goes back in time, whichever way an old copy arrives (issue 11: never stuck).

An operator that becomes the leader lists Jobs and pods while Kopf's watch events keep arriving: a DELETED
event can overtake the listing page that still holds the object. That page used to revive the deleted Job or
pod (a tombstone was replaced whatever its resourceVersion), and the operation then waited on something that
no longer existed until the periodic resync, minutes later. Also checked: an older listing's copy of a Job
never replaces the Job of the same name the operator has since re-created (another UID, newer).
"""

from __future__ import annotations

from typing import Any

from dops.reconcile.cache import Cache
from tests.workload_builders import job, operation, pod


def _at(obj: dict[str, Any], rv: str, uid: str | None = None) -> dict[str, Any]:
    obj["metadata"]["resourceVersion"] = rv
    if uid is not None:
        obj["metadata"]["uid"] = uid
    return obj


def test_a_deleted_job_is_not_revived_by_a_listing_taken_before_its_deletion() -> None:
    cache = Cache()
    op = operation(state="scheduled")
    cache.put_operation(op)
    cache.put_job(_at(job(active=1), "10"))
    cache.delete_job(_at(job(active=1), "12"))  # Kopf's DELETED event
    cache.put_job(_at(job(active=1), "10"))  # the start-up listing's page, fetched before the deletion
    assert cache.job_for(op)["gone"]  # type: ignore[index]


def test_a_deleted_pod_is_not_revived_by_a_listing_taken_before_its_deletion() -> None:
    cache = Cache()
    op = operation(state="running")
    cache.put_operation(op)
    cache.put_job(_at(job(active=1), "10"))
    cache.put_pod(_at(pod(running=True), "11"))
    cache.delete_pod(_at(pod(running=True), "13"))
    cache.put_pod(_at(pod(running=True), "11"))
    (cached,) = cache.pods_for(op)
    assert cached["gone"]


def test_an_older_copy_of_a_replaced_job_does_not_replace_the_new_one() -> None:
    cache = Cache()
    op = operation(state="scheduled")
    cache.put_operation(op)
    cache.put_job(_at(job(active=1), "20", uid="uid-job-new"))  # re-created by the operator (create response)
    cache.put_job(_at(job(active=1), "10", uid="uid-job"))  # the deleted one, from an older listing
    assert cache.job_for(op)["uid"] == "uid-job-new"  # type: ignore[index]


def test_newer_copies_still_replace_what_is_cached() -> None:
    """The twin: the same Job at a later version, and a new Job of the same name, do replace the cached one."""
    cache = Cache()
    op = operation(state="scheduled")
    cache.put_operation(op)
    cache.put_job(_at(job(active=1), "10"))
    cache.put_job(_at(job(active=0, conditions=(("Complete", "True", ""),)), "11"))
    assert cache.job_for(op)["active"] == 0  # type: ignore[index]
    cache.delete_job(_at(job(), "12"))
    cache.put_job(_at(job(active=1), "15", uid="uid-job-new"))  # a new Job of that name replaces the tombstone
    assert cache.job_for(op)["uid"] == "uid-job-new" and not cache.job_for(op)["gone"]  # type: ignore[index]
