"""Jobs end to end on the embedded control plane: Job controller + GC + kubelet running real processes
(spec S7, S12, S13; statements 39, 55-61 and 63 with real kubectl and helm).

Aspects covered:
- a Job runs its container as a local process to Complete; `kubectl wait --for=condition=complete` returns 0;
  the pod carries the job labels, a controller ownerReference and `spec.nodeName` (55, 61);
- the issue's acceptance example: `print('hi'); sys.exit(3)` with backoffLimit 1 → two pods, each
  `terminated.exitCode=3, reason=Error`, whose logs say `hi`; FailureTarget then Failed/BackoffLimitExceeded (56);
- a termination message written by a Job's process reaches the pod status (57);
- Job `activeDeadlineSeconds` kills the process and fails the Job with DeadlineExceeded (58);
- `ttlSecondsAfterFinished: 0` deletes the Job and its pods once the process has run (59);
- `kubectl delete job` (Background) kills the process within the pod's grace period; Foreground returns
  only once the pods (and processes) are gone; Orphan leaves the process running, unowned (39);
- `kubectl logs job/<name>` with `--tail`, `--since` and `-f` (60);
- `helm install --wait --wait-for-jobs` with a Job and a post-install hook Job returns once they are
  Complete; a failing Job makes it fail (63);
- the kubernetes client deserializes the Job and pod states the runtime produced (52).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.builders import job
from tests.emulator.kubelet_support import (
    IMAGE,
    KubeletCluster,
    condition,
    deserialize,
    kubelet_cluster,
    pid_alive,
    python,
    terminated,
    wait_for_file,
)
from tests.helpers import eventually

JSON = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletCluster]:
    with kubelet_cluster(tmp_path_factory.mktemp("jobs")) as running:
        yield running


@pytest.fixture
def ns(cluster: KubeletCluster) -> str:
    name = f"jobs-{uuid.uuid4().hex[:8]}"
    cluster.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def python_job(name: str, ns: str, script: str, **spec: Any) -> JSON:
    return job(name, ns, command=python(script), image=IMAGE, **spec)


def get_job(cluster: KubeletCluster, ns: str, name: str) -> JSON | None:
    response = cluster.request("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/{name}")
    return response.json() if response.status_code == 200 else None


def job_pods(cluster: KubeletCluster, ns: str, name: str) -> list[JSON]:
    response = cluster.request(
        "GET", f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": f"batch.kubernetes.io/job-name={name}"}
    )
    pods: list[JSON] = response.json()["items"]
    return sorted(pods, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))


def wait_job(cluster: KubeletCluster, ns: str, name: str, ctype: str, timeout: float = 20) -> JSON:
    found: JSON = eventually(
        lambda: get_job(cluster, ns, name),
        lambda j: j is not None and (condition(j, ctype) or {}).get("status") == "True",
        timeout=timeout,
        describe=f"job {name} {ctype}",
    )
    return found


def pid_of(cluster: KubeletCluster, ns: str, pod_name: str) -> int:
    text = eventually(
        lambda: cluster.log_so_far(pod_name, ns), lambda t: bool(re.match(r"^\d+\n", t)), describe="pid printed"
    )
    return int(text.split()[0])


def running_pod(cluster: KubeletCluster, ns: str, job_name: str) -> JSON:
    pods: list[JSON] = eventually(
        lambda: job_pods(cluster, ns, job_name),
        lambda ps: len(ps) == 1 and ps[0]["status"].get("phase") == "Running",
        describe=f"the running pod of {job_name}",
    )
    return pods[0]


PID_AND_SLEEP = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(300)"
PID_IGNORING_SIGTERM = (
    "import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint(os.getpid(), flush=True)\n"
    "while True:\n    time.sleep(0.05)"
)


# ----------------------------------------------------------------------------------- 55, 61
def test_job_runs_a_real_process_to_complete(cluster: KubeletCluster, ns: str) -> None:
    """S12 / statements 55 and 61: the Job's pod (job labels, controller ownerReference, spec.nodeName) runs the
    command as a process and goes Pending → Running → Succeeded; the Job gets succeeded=1, completionTime and
    SuccessCriteriaMet + Complete (CompletionsReached); real `kubectl wait --for=condition=complete` returns 0."""
    created = cluster.create(f"/apis/batch/v1/namespaces/{ns}/jobs", python_job("hello", ns, "print('hello job')"))
    uid = created["metadata"]["uid"]
    assert created["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    kubectl = cluster.kubectl()
    waited = kubectl.run("wait", "--for=condition=complete", "job/hello", "-n", ns, "--timeout=30s")
    assert "job.batch/hello condition met" in waited.stdout

    done = get_job(cluster, ns, "hello")
    assert done is not None
    status = done["status"]
    assert status["succeeded"] == 1 and status.get("failed", 0) == 0 and status["completionTime"]
    assert [(c["type"], c["reason"]) for c in status["conditions"]] == [
        ("SuccessCriteriaMet", "CompletionsReached"),
        ("Complete", "CompletionsReached"),
    ]
    (pod,) = job_pods(cluster, ns, "hello")
    labels = pod["metadata"]["labels"]
    assert {k: labels[k] for k in ("batch.kubernetes.io/controller-uid", "controller-uid")} == {
        "batch.kubernetes.io/controller-uid": uid,
        "controller-uid": uid,
    }
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "hello"
    (owner,) = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"], owner["blockOwnerDeletion"]) == ("Job", uid, True, True)
    assert pod["spec"]["nodeName"] == "dops-node"
    assert pod["status"]["phase"] == "Succeeded"
    assert terminated(pod)["exitCode"] == 0
    assert cluster.log_text(pod["metadata"]["name"], ns) == "hello job\n"
    api_client = cluster.api_client()
    assert deserialize(api_client, done, "V1Job").status.succeeded == 1
    deserialize(api_client, pod)
    table = kubectl.run("get", "job", "hello", "-n", ns).stdout
    assert re.search(r"^hello\s+Complete\s+1/1\s", table, re.MULTILINE), table


# ----------------------------------------------------------------------------------- 56
def test_acceptance_exit_3_with_backoff_limit_1_fails_after_two_pods(cluster: KubeletCluster, ns: str) -> None:
    """Issue acceptance / statement 56: `python -c "import sys; print('hi'); sys.exit(3)"` with backoffLimit 1
    ends Failed/BackoffLimitExceeded (after FailureTarget) with two pods that each report exitCode 3, reason
    Error, and whose logs say `hi`."""
    body = job("fails", ns, command=[*python("import sys; print('hi'); sys.exit(3)")], image=IMAGE, backoff_limit=1)
    cluster.create(f"/apis/batch/v1/namespaces/{ns}/jobs", body)
    failed = wait_job(cluster, ns, "fails", "Failed")
    assert [(c["type"], c["reason"]) for c in failed["status"]["conditions"]] == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    assert failed["status"]["conditions"][1]["message"] == "Job has reached the specified backoff limit"
    assert failed["status"]["failed"] == 2
    pods = job_pods(cluster, ns, "fails")
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        end = terminated(pod)
        assert (end["exitCode"], end["reason"]) == (3, "Error")
        assert cluster.log_text(pod["metadata"]["name"], ns) == "hi\n"
        deserialize(cluster.api_client(), pod)
    deserialize(cluster.api_client(), failed, "V1Job")


# ----------------------------------------------------------------------------------- 57
def test_job_termination_message_reaches_the_pod(cluster: KubeletCluster, ns: str) -> None:
    """S12 / statement 57: a Job's process writes its termination message; the pod's `terminated.message` has it,
    and FallbackToLogsOnError reports the log tail of a failing process that wrote none."""
    write = "import os; open(os.environ['DOPS_TERMINATION_MESSAGE_PATH'], 'w').write('result=42')"
    cluster.create(f"/apis/batch/v1/namespaces/{ns}/jobs", python_job("msg", ns, write))
    fallback = python_job("fallback", ns, "print('it broke'); raise SystemExit(1)", backoff_limit=0)
    fallback["spec"]["template"]["spec"]["containers"][0]["terminationMessagePolicy"] = "FallbackToLogsOnError"
    cluster.create(f"/apis/batch/v1/namespaces/{ns}/jobs", fallback)
    wait_job(cluster, ns, "msg", "Complete")
    assert terminated(job_pods(cluster, ns, "msg")[0])["message"] == "result=42"
    wait_job(cluster, ns, "fallback", "Failed")
    assert terminated(job_pods(cluster, ns, "fallback")[0])["message"] == "it broke\n"


# ----------------------------------------------------------------------------------- 58, 59
def test_job_active_deadline_kills_the_process(cluster: KubeletCluster, ns: str) -> None:
    """S12 / statement 58: `activeDeadlineSeconds` kills the running process and fails the Job with
    DeadlineExceeded ("Job was active longer than specified deadline")."""
    cluster.create(
        f"/apis/batch/v1/namespaces/{ns}/jobs", python_job("slow", ns, PID_AND_SLEEP, activeDeadlineSeconds=4)
    )
    pod = running_pod(cluster, ns, "slow")
    pid = pid_of(cluster, ns, pod["metadata"]["name"])
    assert pid_alive(pid)
    failed = wait_job(cluster, ns, "slow", "Failed")
    final = failed["status"]["conditions"][-1]
    assert (final["reason"], final["message"]) == ("DeadlineExceeded", "Job was active longer than specified deadline")
    eventually(lambda: pid_alive(pid), lambda alive: not alive, describe="the process killed")


def test_ttl_seconds_after_finished_zero_deletes_job_and_pods(cluster: KubeletCluster, ns: str, tmp_path: Path) -> None:
    """S12 / statement 59: `ttlSecondsAfterFinished: 0` deletes the Job and its pods shortly after the process
    completed."""
    marker = tmp_path / "ran"
    script = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('done')"
    cluster.create(
        f"/apis/batch/v1/namespaces/{ns}/jobs", python_job("ephemeral", ns, script, ttlSecondsAfterFinished=0)
    )
    eventually(lambda: get_job(cluster, ns, "ephemeral"), lambda j: j is None, describe="job deleted by its TTL")
    eventually(lambda: job_pods(cluster, ns, "ephemeral"), lambda pods: pods == [], describe="pods collected")
    assert marker.read_text() == "done"


# ----------------------------------------------------------------------------------- 39
def test_kubectl_delete_job_kills_the_process_within_the_grace_period(cluster: KubeletCluster, ns: str) -> None:
    """Issue acceptance / statement 39: `kubectl delete job` (Background) deletes the pod; the kubelet SIGTERMs
    the process, which ignores it, and SIGKILLs it when the pod's grace period (1 s) ends."""
    body = python_job("doomed", ns, PID_IGNORING_SIGTERM)
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    cluster.create(f"/apis/batch/v1/namespaces/{ns}/jobs", body)
    pod = running_pod(cluster, ns, "doomed")
    pid = pid_of(cluster, ns, pod["metadata"]["name"])
    started = time.monotonic()
    out = cluster.kubectl().run("delete", "job", "doomed", "-n", ns)
    assert 'job.batch "doomed" deleted' in out.stdout
    eventually(lambda: pid_alive(pid), lambda alive: not alive, timeout=5, describe="the process killed")
    elapsed = time.monotonic() - started
    assert elapsed < 1 + 3, f"killed {elapsed:.1f}s after the delete, grace period 1s"
    eventually(lambda: job_pods(cluster, ns, "doomed"), lambda pods: pods == [], describe="pods gone")


def test_kubectl_delete_job_foreground_and_orphan_with_real_processes(cluster: KubeletCluster, ns: str) -> None:
    """S7 / statement 39: `--cascade=foreground` returns only after the pods are gone (their processes
    stopped); `--cascade=orphan` leaves the pod and its process running, without ownerReferences."""
    kubectl = cluster.kubectl()
    cluster.create(f"/apis/batch/v1/namespaces/{ns}/jobs", python_job("fg", ns, PID_AND_SLEEP))
    fg_pod = running_pod(cluster, ns, "fg")
    fg_pid = pid_of(cluster, ns, fg_pod["metadata"]["name"])
    kubectl.run("delete", "job", "fg", "-n", ns, "--cascade=foreground", "--timeout=30s")
    assert get_job(cluster, ns, "fg") is None
    assert job_pods(cluster, ns, "fg") == []
    eventually(lambda: pid_alive(fg_pid), lambda alive: not alive, timeout=3, describe="foreground pod's process")

    cluster.create(f"/apis/batch/v1/namespaces/{ns}/jobs", python_job("orph", ns, PID_AND_SLEEP))
    orphan_pod = running_pod(cluster, ns, "orph")
    orphan_pid = pid_of(cluster, ns, orphan_pod["metadata"]["name"])
    kubectl.run("delete", "job", "orph", "-n", ns, "--cascade=orphan")
    left = eventually(
        lambda: job_pods(cluster, ns, "orph"),
        lambda pods: len(pods) == 1 and not pods[0]["metadata"].get("ownerReferences"),
        describe="the orphaned pod without ownerReferences",
    )
    assert left[0]["status"]["phase"] == "Running" and pid_alive(orphan_pid)
    cluster.delete_pod(left[0]["metadata"]["name"], ns)
    eventually(lambda: pid_alive(orphan_pid), lambda alive: not alive, describe="orphan's process after its delete")


# ----------------------------------------------------------------------------------- 60
def test_kubectl_logs_job(cluster: KubeletCluster, ns: str, tmp_path: Path) -> None:
    """S13 / statement 60: real `kubectl logs job/<name>` prints the process's stdout and stderr; `--tail`,
    `--since` and `-f` (which ends when the process exits) behave as documented."""
    gate = tmp_path / "gate"
    script = (
        "import sys\nprint('line 1', flush=True)\nprint('line 2', flush=True)\n"
        + wait_for_file(gate)
        + "print('problem', file=sys.stderr, flush=True)\n"
    )
    cluster.create(f"/apis/batch/v1/namespaces/{ns}/jobs", python_job("talker", ns, script))
    pod = running_pod(cluster, ns, "talker")
    eventually(
        lambda: cluster.log_so_far(pod["metadata"]["name"], ns), lambda t: t.endswith("line 2\n"), describe="lines"
    )
    kubectl = cluster.kubectl()
    assert kubectl.run("logs", "job/talker", "-n", ns).stdout == "line 1\nline 2\n"
    assert kubectl.run("logs", "job/talker", "-n", ns, "--tail=1").stdout == "line 2\n"
    assert kubectl.run("logs", "job/talker", "-n", ns, "--since=1h").stdout == "line 1\nline 2\n"
    follower = kubectl.popen("logs", "-f", "job/talker", "-n", ns)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "line 1\n"
        assert follower.stdout.readline() == "line 2\n"
        gate.touch()
        rest, errors = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert (rest, follower.returncode) == ("problem\n", 0), errors
    wait_job(cluster, ns, "talker", "Complete")
    assert kubectl.run("logs", "job/talker", "-n", ns).stdout == "line 1\nline 2\nproblem\n"
    eventually(
        lambda: kubectl.run("logs", "job/talker", "-n", ns, "--since=1s").stdout,
        lambda out: out == "",
        describe="--since=1s once the lines are older",
    )


# ----------------------------------------------------------------------------------- 63
def write_chart(root: Path, job_script: str, hook_script: str) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": "jobs", "version": "0.1.0"}))
    main = job("{{ .Release.Name }}-work", "", command=python(job_script), image=IMAGE, backoff_limit=0)
    hook = job("{{ .Release.Name }}-hook", "", command=python(hook_script), image=IMAGE, backoff_limit=0)
    hook["metadata"]["annotations"] = {
        "helm.sh/hook": "post-install",
        "helm.sh/hook-delete-policy": "before-hook-creation",
    }
    for manifest in (main, hook):
        del manifest["metadata"]["namespace"]
    (root / "templates" / "work.yaml").write_text(yaml.safe_dump(main))
    (root / "templates" / "hook.yaml").write_text(yaml.safe_dump(hook))
    return root


def test_helm_install_wait_for_jobs(cluster: KubeletCluster, ns: str, tmp_path: Path) -> None:
    """S12 / statement 63: real `helm install --wait --wait-for-jobs` with a Job and a post-install hook Job
    returns only once both are Complete; when the Job's process fails, the install fails."""
    helm = cluster.helm()
    good = write_chart(tmp_path / "good", "print('working')", "print('hooked')")
    out = helm.run("install", "ok", str(good), "-n", ns, "--wait", "--wait-for-jobs", "--timeout=60s", timeout=90)
    assert "STATUS: deployed" in out.stdout
    for name in ("ok-work", "ok-hook"):
        done = get_job(cluster, ns, name)
        assert done is not None and (condition(done, "Complete") or {}).get("status") == "True", name
    (work_pod,) = job_pods(cluster, ns, "ok-work")
    assert cluster.log_text(work_pod["metadata"]["name"], ns) == "working\n"

    bad = write_chart(tmp_path / "bad", "import sys; print('nope'); sys.exit(1)", "print('never')")
    failed = helm.run(
        "install", "broken", str(bad), "-n", ns, "--wait", "--wait-for-jobs", "--timeout=60s", check=False, timeout=90
    )
    assert failed.returncode != 0, failed.stdout
    assert "broken-work" in failed.stderr and "fail" in failed.stderr.lower(), failed.stderr
    broken = get_job(cluster, ns, "broken-work")
    assert broken is not None and (condition(broken, "Failed") or {}).get("reason") == "BackoffLimitExceeded"


def test_a_pod_deleted_before_it_was_scheduled_is_failed_and_counted(cluster: KubeletCluster, ns: str) -> None:
    """A Job pod that no node takes (a nodeSelector nothing matches) and is then deleted: as kube-controller-
    manager's pod GC does, it is marked Failed and removed; the Job counts the failure and, with
    `podReplacementPolicy: Failed` and `backoffLimit: 0`, fails. (It stayed Terminating, the Job waiting for
    a Failed pod for ever; the chaos suite met it as an operation stuck in `scheduled`.)"""
    body = python_job("nowhere", ns, "pass", backoffLimit=0, podReplacementPolicy="Failed")
    body["spec"]["template"]["spec"]["nodeSelector"] = {"dops.test/no-such-node": "true"}
    cluster.create(f"/apis/batch/v1/namespaces/{ns}/jobs", body)
    pending: list[JSON] = eventually(
        lambda: job_pods(cluster, ns, "nowhere"), lambda ps: len(ps) == 1, describe="the Job's unschedulable pod"
    )
    name = pending[0]["metadata"]["name"]
    assert not pending[0]["spec"].get("nodeName")
    assert cluster.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}").status_code == 200
    failed = wait_job(cluster, ns, "nowhere", "Failed")
    assert failed["status"].get("failed") == 1, failed["status"]
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"
    eventually(lambda: job_pods(cluster, ns, "nowhere"), lambda ps: ps == [], describe="the deleted pod gone")
