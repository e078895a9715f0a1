"""What the operator makes of its worker's exit (issue 11, items 5 and 10), with real worker processes.

- The worker finished but the API server refused every outcome write until it gave up (exit code 4): the
  operator records the outcome the worker left in its termination message — `completed` with the result —
  instead of failing a finished operation.
- Exit code 1 is a crash (an unhandled Python error), 3 a failure the worker recorded: the failure
  message says which.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import eventually
from tests.integration.operator_env import OperatorEnv, condition, namespace, operator_env
from tests.op_builders import delegation_target, operation

__all__ = ["namespace", "operator_env"]  # fixtures


def test_an_outcome_the_worker_could_not_record_is_recorded_from_its_termination_message(
    operator_env: OperatorEnv, namespace: str, tmp_path: Path
) -> None:
    env = operator_env
    patient_for_one_second = {"env": [{"name": "DOPS_WORKER_WRITE_RETRY_SECONDS", "value": "1"}]}
    env.create(namespace, delegation_target("impatient", allowImportPaths=True, podTemplate=patient_for_one_second))
    ready, go = tmp_path / "ready", tmp_path / "go"
    body = (
        operation("lost-write", namespace)
        .operator("py:tests.worker_ops:handshake")
        .target("impatient")
        .params(ready=str(ready), go=str(go), value="finished")
        .build()
    )
    env.create(namespace, body)
    eventually(ready.exists, timeout=60, describe="the worker to run")
    env.wait_state(namespace, "lost-write", "running")
    server = env.server
    rule = server.call(lambda: server.faults.add(500, "PATCH", "/delegatedoperations/lost-write/status$", times=-1))
    try:
        go.touch()
        job = env.get_op(namespace, "lost-write")["status"]["jobName"]

        def worker_exit_code() -> int | None:
            for pod in env.pods_of(namespace, job):
                for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                    terminated = (cs.get("state") or {}).get("terminated")
                    if terminated:
                        return int(terminated["exitCode"])
            return None

        code = eventually(worker_exit_code, lambda c: c is not None, timeout=60, describe="the worker to exit")
        assert code == 4
    finally:
        server.call(lambda: server.faults.rules.remove(rule))
    obj = env.wait_processed(namespace, "lost-write", timeout=60)
    status = obj["status"]
    assert status["runState"] == "completed", status
    assert status["result"] == {"result": {"handshake": "finished"}}, status
    succeeded = condition(obj, "Succeeded")
    assert succeeded["reason"] == "Completed", succeeded
    assert "termination message" in succeeded["message"], succeeded


def test_a_crash_and_a_recorded_failure_are_told_apart(operator_env: OperatorEnv, namespace: str) -> None:
    """Exit 1 (a crash: nothing recorded) is reported as a crash; a failure the worker recorded keeps its message."""
    env = operator_env
    env.create(namespace, delegation_target("trusted", allowImportPaths=True))
    crash = operation("crashes", namespace).operator("py:tests.worker_ops:crash").target("trusted").params(code=1)
    env.create(namespace, crash.build())
    crashed = condition(env.wait_processed(namespace, "crashes"), "Succeeded")
    assert crashed["reason"] == "NonZeroExitCode", crashed
    assert "exit code 1 (the worker crashed)" in crashed["message"], crashed
    env.create(namespace, operation("fails", namespace).operator("@dops/examples/fail").build())
    failed = env.wait_processed(namespace, "fails")
    assert failed["status"]["result"]["errorMessage"].startswith("ExampleFailure"), failed["status"]
