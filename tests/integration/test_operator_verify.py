"""A fact a watch gap hid never leaves an operation stuck (issue 11: never stuck; found by the chaos suite).

After a watch's 410 Kopf lists the kind again and emits nothing for what vanished in the gap, so the operator
went on believing in a deleted Job until its periodic resync (`DOPS_RESYNC_INTERVAL_SECONDS`, 300 s by
default): its operation stayed `scheduled` (the start deadline, 600 s by default, was the only other way out)
or `running`, longer than the chaos suite waits for quiescence (75 s). Now an operation that has been
`scheduled` or `running` for `DOPS_VERIFY_AFTER_SECONDS` (30 by default, 3 here) has its Job and pods re-read
before it is reconciled (then at most every twice that), with the default resync interval:

- a running operation whose Job and pod are deleted in a Job/pod watch gap fails `JobMissing`/`PodDeleted`;
- the same for a `scheduled` operation (its pod is never scheduled, so no pod event could tell anything);
- the happy twin: a run longer than the verification delay, re-read while it runs, completes with its result.

The gap is made as in test_operator_ghosts.py: every list/watch of Jobs and pods answers 500 and their open
watches end with 410, the Job is deleted, then the fault is lifted and Kopf relists.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dops.emulator import errors
from tests.helpers import eventually
from tests.integration.operator_env import (
    OperatorEnv,
    condition,
    namespace,
    operator_env,
    operator_settings,
)
from tests.integration.test_operator_ghosts import delete, gone, lose_job_and_pod_in_a_watch_gap, watch_gap
from tests.op_builders import delegation_target, operation

__all__ = ["namespace", "operator_env"]  # fixtures

VERIFY_AFTER = 3  # seconds; the default (30) would only make these tests slower
# Far below the default resync interval (300 s): only the re-read, not the periodic resync, can meet it.
FOUND_WITHIN = 60.0  # VERIFY_AFTER + the safety-net interval (5 here) + the slack a loaded machine needs


@pytest.fixture(scope="module", autouse=True)
def quick_verification(operator_env: OperatorEnv) -> Iterator[None]:
    operator_env.stop_operator()
    operator_env.start_operator(operator_settings(operator_env.archive, verify_after_seconds=VERIFY_AFTER))
    yield


def test_the_default_resync_is_minutes_away(operator_env: OperatorEnv) -> None:
    """The tests below mean something only if the periodic resync cannot be what finds the Job."""
    assert operator_env.settings.resync_interval_seconds >= 5 * FOUND_WITHIN > 5 * VERIFY_AFTER


def test_running_operations_job_deleted_in_a_watch_gap_fails_without_waiting_for_the_resync(
    operator_env: OperatorEnv, namespace: str
) -> None:
    env = operator_env
    lose_job_and_pod_in_a_watch_gap(env, namespace, "lost", seconds=300)
    obj = env.wait_processed(namespace, "lost", timeout=FOUND_WITHIN)
    assert obj["status"]["runState"] == "failed", obj["status"]
    assert condition(obj, "Succeeded")["reason"] in ("JobMissing", "PodDeleted"), condition(obj, "Succeeded")


def test_scheduled_operations_job_deleted_in_a_watch_gap_fails_without_waiting_for_the_resync(
    operator_env: OperatorEnv, namespace: str
) -> None:
    """The chaos suite's symptom: `scheduled` on a Job the operator still believed in (its pod never ran, so
    no pod event could tell; the start deadline, 600 s by default, was the only other way out)."""
    env = operator_env
    env.create(namespace, delegation_target("nowhere", namespace, podTemplate={"nodeSelector": {"no": "node"}}))
    env.create(namespace, operation("stranded", namespace).target("nowhere").build())
    obj = env.wait_state(namespace, "stranded", "scheduled")
    job = f"/apis/batch/v1/namespaces/{namespace}/jobs/{obj['status']['jobName']}"
    eventually(lambda: env.jobs_of(namespace, "stranded"), describe="its Job")
    with watch_gap(env, "jobs", "pods"):
        delete(env, job)
        eventually(lambda: gone(env, job), timeout=30, describe="Job gone")
    obj = env.wait_processed(namespace, "stranded", timeout=FOUND_WITHIN)
    assert obj["status"]["runState"] == "failed", obj["status"]
    assert condition(obj, "Succeeded")["reason"] == "JobMissing", condition(obj, "Succeeded")


def test_a_run_longer_than_the_verification_delay_completes(operator_env: OperatorEnv, namespace: str) -> None:
    """The happy twin: its Job and pod are re-read while it runs (nothing vanished), and nothing changes: the run
    completes with its result, after a watch relist too."""
    env = operator_env
    server = env.server
    calm = operation("calm", namespace).operator("@dops/examples/sleep").params(seconds=4 * VERIFY_AFTER)
    env.create(namespace, calm.build())
    env.wait_state(namespace, "calm", "running")

    def expire() -> int:
        watchers = [w for w in server.api.store.all_watchers() if w.resource[1] in ("jobs", "pods")]
        for watcher in watchers:
            watcher.fail(errors.expired("too old resource version (injected)").status())
        return len(watchers)

    assert server.call(expire) > 0
    obj = env.wait_processed(namespace, "calm", timeout=120)
    assert obj["status"]["runState"] == "completed", obj["status"]
    assert obj["status"]["result"]["result"] == {"slept": 4 * VERIFY_AFTER}, obj["status"]
