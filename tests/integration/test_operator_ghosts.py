"""What the operator remembers must be the truth about the operation *as it is now* (issue 11, items 3, 8, 12).

- a re-created operation (same name, new UID) never inherits its predecessor's Job, pods or events, and
  waits while its predecessor's Job still holds the Job name;
- a copy of the worker pod with the same labels (no controller reference to the Job) is never its pod;
- an operation deleted while the operator's watch was broken (a 410 relist emits nothing for objects
  that vanished in the gap) is dropped at its first 404: a running ghost frees its admission slot, a
  queued ghost is not re-admitted in a loop of PATCHes;
- a Job deleted while the Job and pod watches were broken is found gone by the periodic resync, and its
  operation fails `JobMissing` instead of staying `running`.

The watch gap is made with the control plane's fault hooks: every list/watch of the resource answers
500 (so Kopf cannot resume or relist) and the open watches are expired; the object is deleted; the
fault is lifted, and Kopf's relist no longer contains it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from dops.api.types import DelegatedOperationDocument
from dops.cli.ops import events_for
from dops.cli.session import Session
from dops.emulator import errors
from dops.k8s import NotFound
from tests.helpers import eventually
from tests.integration.operator_env import (
    MISSING_IMAGE,
    OperatorEnv,
    condition,
    kill,
    namespace,
    operator_env,
    wait_gone,
    worker_pids,
)
from tests.op_builders import delegation_target, operation

__all__ = ["namespace", "operator_env"]  # fixtures


def lose_job_and_pod_in_a_watch_gap(env: OperatorEnv, namespace: str, name: str, seconds: int) -> None:
    """A running operation `name` (sleeping `seconds`) whose Job and pod are deleted while every Job and pod
    watch is down: no DELETED event reaches the operator."""
    env.create(namespace, operation(name, namespace).operator("@dops/examples/sleep").params(seconds=seconds).build())
    env.wait_state(namespace, name, "running")
    pids = eventually(lambda: worker_pids(f"{namespace}/{name}"), describe=f"the worker process of {name}")
    status = env.get_op(namespace, name)["status"]
    with watch_gap(env, "jobs", "pods"):
        delete(env, f"/apis/batch/v1/namespaces/{namespace}/jobs/{status['jobName']}")
        wait_gone(pids, 30)
        pod = f"/api/v1/namespaces/{namespace}/pods/{status['podName']}"
        eventually(lambda: gone(env, pod), timeout=30, describe="pod gone")


def delete(env: OperatorEnv, path: str) -> None:
    env.kube.request(
        "DELETE", path, body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    )


def gone(env: OperatorEnv, path: str) -> bool:
    try:
        env.kube.request("GET", path)
    except NotFound:
        return True
    return False


def op_path(namespace: str, name: str) -> str:
    return f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegatedoperations/{name}"


@contextlib.contextmanager
def watch_gap(env: OperatorEnv, *plurals: str) -> Iterator[None]:
    """While inside: every collection GET (list or watch) of `plurals` fails 500 and their open watches end with
    410 Expired, so the operator sees nothing of what happens to those objects (and only those); on exit the
    fault is lifted and Kopf's relist shows what is there, and nothing of what vanished."""
    server = env.server

    def expire() -> int:
        watchers = [w for w in server.api.store.all_watchers() if w.resource[1] in plurals]
        for watcher in watchers:
            watcher.fail(errors.expired("too old resource version (injected watch gap)").status())
        return len(watchers)

    rule = server.call(lambda: server.faults.add(500, "GET", rf"/({'|'.join(plurals)})$", times=-1))
    assert server.call(expire) > 0, f"no open watch of {plurals}"
    try:
        yield
    finally:
        server.call(lambda: server.faults.rules.remove(rule))


def test_recreated_operation_does_not_inherit_its_predecessor(operator_env: OperatorEnv, namespace: str) -> None:
    """Item 12: `kubectl delete` an operation and re-`apply` the same name at once: the new one runs its own
    Job and pod (never the old pod: no "exited with exit code 0 without recording a result"), and `dops get`
    lists only its own events."""
    env = operator_env
    first = env.create(namespace, operation("again", namespace).params(round=1).build())
    done = env.wait_processed(namespace, "again")
    assert done["status"]["runState"] == "completed", done["status"]
    old_pod = done["status"]["podName"]
    old_job = env.kube.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{done['status']['jobName']}")
    delete(env, op_path(namespace, "again"))
    second = env.create(namespace, operation("again", namespace).params(round=2).build())
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    obj = env.wait_processed(namespace, "again")
    assert obj["metadata"]["uid"] == second["metadata"]["uid"]
    assert obj["status"]["runState"] == "completed", obj["status"]
    assert old_pod not in str(obj["status"].get("logUploadError") or ""), obj["status"]
    pod = env.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{obj['status']['podName']}")
    job = env.kube.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{obj['status']['jobName']}")
    assert [r["uid"] for r in job["metadata"]["ownerReferences"]] == [second["metadata"]["uid"]]
    assert [r["uid"] for r in pod["metadata"]["ownerReferences"]] == [job["metadata"]["uid"]]

    # `dops get`'s events: the new operation's (and its Job's and pod's), none of the old one's.
    def own_events() -> list[str]:
        sess = Session(kubeconfig=str(env.kubeconfig), namespace=namespace)
        try:
            events = events_for(sess, DelegatedOperationDocument.from_resource(env.get_op(namespace, "again")))
        finally:
            sess.close()
        assert events is not None
        return [str((e.get("involvedObject") or {}).get("uid")) for e in events]

    uids = eventually(own_events, lambda u: len(u) > 0, describe="events of the new operation")
    assert first["metadata"]["uid"] not in uids and old_job["metadata"]["uid"] not in uids, uids
    assert second["metadata"]["uid"] in uids and job["metadata"]["uid"] in uids, uids


def test_running_ghost_frees_its_slot(operator_env: OperatorEnv, namespace: str) -> None:
    """Item 3: a running operation deleted while the operator's watch of operations was broken is dropped at the
    first 404 of its terminal write, freeing its admission slot (it used to hold `maxConcurrent: 1` forever)."""
    env = operator_env
    env.create(namespace, delegation_target("solo", namespace, maxConcurrent=1))
    env.create(namespace, operation("holder", namespace).target("solo").operator("@dops/examples/sleep")
               .params(seconds=120).build())  # fmt: skip
    env.wait_state(namespace, "holder", "running")
    pids = eventually(lambda: worker_pids(f"{namespace}/holder"), describe="the worker process of holder")
    with watch_gap(env, "delegatedoperations"):
        delete(env, op_path(namespace, "holder"))
        # Garbage collection takes its Job and pod (the operator's watches of those still work).
        eventually(lambda: env.jobs_of(namespace, "holder"), lambda jobs: jobs == [], timeout=30, describe="Job gone")
        wait_gone(pids, 30)
    env.create(namespace, operation("next", namespace).target("solo").params(x=1).build())
    obj = env.wait_processed(namespace, "next", timeout=60)
    assert obj["status"]["runState"] == "completed", obj["status"]


def test_queued_ghost_is_not_readmitted_in_a_loop(operator_env: OperatorEnv, namespace: str) -> None:
    """Item 3: a queued operation deleted during a watch gap is dropped at the first 404 of its admission, instead
    of being re-admitted in a tight loop of PATCHes ahead of every other operation of its target."""
    env = operator_env
    server = env.server
    env.create(namespace, delegation_target("solo", namespace, maxConcurrent=1))
    env.create(namespace, operation("first", namespace).target("solo").operator("@dops/examples/sleep")
               .params(seconds=120).build())  # fmt: skip
    env.wait_state(namespace, "first", "running")
    env.create(namespace, operation("ghost", namespace).target("solo").params(x=1).build())
    env.wait_state(namespace, "ghost", "queued")
    with watch_gap(env, "delegatedoperations"):
        delete(env, op_path(namespace, "ghost"))
    env.create(namespace, operation("later", namespace).target("solo").params(x=2).build())
    env.wait_state(namespace, "later", "queued")
    server.http.access_log = []
    try:
        for pid in eventually(lambda: worker_pids(f"{namespace}/first"), describe="the worker process of first"):
            kill(pid)  # first fails: its slot is free for the ghost (first in line), then for later
        obj = env.wait_processed(namespace, "later", timeout=60)
        patches = [r for r in list(server.http.access_log) if r.method == "PATCH" and r.path.endswith("/ghost/status")]
    finally:
        server.http.access_log = None
    assert obj["status"]["runState"] == "completed", obj["status"]
    assert len(patches) <= 2, f"{len(patches)} PATCHes of the deleted operation"


def test_job_deleted_in_a_watch_gap_is_found_by_the_resync(operator_env: OperatorEnv, namespace: str) -> None:
    """Item 3: a Job (and its pod) deleted while the operator's Job and pod watches were broken leaves no stuck
    operation: the periodic resync (2 s here) finds them gone, and the operation fails JobMissing."""
    env = operator_env
    settings = env.settings
    env.stop_operator()
    env.start_operator(dataclasses.replace(settings, resync_interval_seconds=2))
    try:
        lose_job_and_pod_in_a_watch_gap(env, namespace, "lost", seconds=120)
        obj = env.wait_processed(namespace, "lost", timeout=60)
        assert obj["status"]["runState"] == "failed"
        assert condition(obj, "Succeeded")["reason"] in ("JobMissing", "PodDeleted"), condition(obj, "Succeeded")
    finally:
        env.stop_operator()
        env.start_operator(settings)


def test_recreated_operation_waits_for_its_predecessors_job_name(operator_env: OperatorEnv, namespace: str) -> None:
    """Item 12: when the predecessor's Job still holds the name `<operation>-1` (here orphaned by
    `kubectl delete --cascade=orphan`, so garbage collection never takes it), the re-created operation never
    takes that Job (or its pod) for its own: it waits with `JobCreateFailed`, then runs once the name is free."""
    env = operator_env
    env.create(namespace, operation("twice", namespace).params(round=1).build())
    done = env.wait_processed(namespace, "twice")
    old_job = done["status"]["jobName"]
    env.kube.request(
        "DELETE",
        op_path(namespace, "twice"),
        body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"},
    )
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{old_job}"
    eventually(
        lambda: env.kube.request("GET", job_path)["metadata"].get("ownerReferences"),
        lambda refs: not refs,
        timeout=30,
        describe="the old Job orphaned",
    )
    env.create(namespace, operation("twice", namespace).params(round=2).build())
    waiting = eventually(
        lambda: env.get_op(namespace, "twice"),
        lambda o: condition(o, "JobCreateFailed").get("status") == "True",
        timeout=30,
        describe="the new operation waiting for the Job name",
    )
    assert waiting["status"]["runState"] == "scheduled", waiting["status"]
    assert "belongs to another operation" in condition(waiting, "JobCreateFailed")["message"]
    delete(env, job_path)
    obj = env.wait_processed(namespace, "twice", timeout=90)
    assert obj["status"]["runState"] == "completed", obj["status"]
    assert condition(obj, "JobCreateFailed")["status"] == "False"


def test_a_copy_of_the_worker_pod_is_never_the_operations_pod(operator_env: OperatorEnv, namespace: str) -> None:
    """Item 8: a pod carrying the worker pod's labels and annotations but no controller reference to the Job (as
    `kubectl debug --copy-to` makes; here with an image that cannot be pulled) never becomes the operation's
    latest pod: the operation completes from its real pod instead of failing ImagePullBackOff on the copy."""
    env = operator_env
    env.create(namespace, operation("copied", namespace).operator("@dops/examples/sleep").params(seconds=6).build())
    running = env.wait_state(namespace, "copied", "running")
    real = env.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{running['status']['podName']}")
    selector_labels = ("controller-uid", "batch.kubernetes.io/controller-uid")  # the Job would adopt a match
    labels = {k: v for k, v in real["metadata"]["labels"].items() if k not in selector_labels}
    spec = dict(real["spec"])
    spec.pop("nodeName", None)
    spec["containers"] = [dict(c, image=MISSING_IMAGE) for c in spec["containers"]]
    copy = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{real['metadata']['name']}-debug",
            "labels": labels,
            "annotations": real["metadata"].get("annotations") or {},
        },
        "spec": spec,
    }
    env.kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=copy)
    obj = env.wait_processed(namespace, "copied", timeout=60)
    assert obj["status"]["runState"] == "completed", obj["status"]
    assert obj["status"]["podName"] == real["metadata"]["name"]
