"""The Job controller (spec S12) driven through the API, with a hand-driven kubelet stand-in.

Aspects covered:
- API-side defaults on create: selector with controller-uid, the four template labels (copied to
  the Job), backoffLimit 6, completions/parallelism, podReplacementPolicy, container defaults
  (statement 55);
- invalid Job specs rejected with the real 422 messages (bad/missing restartPolicy, missing
  containers, invalid and over-long names, podFailurePolicy with OnFailure);
- pods from the template: generateName, job labels, controller ownerReference with
  blockOwnerDeletion, the job-tracking finalizer removed once counted (statement 55);
- status counters active/ready/succeeded/failed/terminating, startTime, completionTime and the
  modern condition order SuccessCriteriaMet → Complete, FailureTarget → Failed (55, 56);
- backoffLimit with pod-failure backoff (exponential, capped) and OnFailure restart counts (56);
- activeDeadlineSeconds: active pods deleted, DeadlineExceeded; terminal condition only once
  pods have terminated (58);
- ttlSecondsAfterFinished deletes the Job and, through the GC, its pods (59);
- suspend / resume, podFailurePolicy (FailJob, Ignore, Count; exit codes, DisruptionTarget),
  parallelism/completions for NonIndexed and Indexed Jobs;
- Events recorded by job-controller;
- the Jobs Table through real `kubectl get jobs` (36) and `kubectl wait --for=condition=complete`;
- the kubernetes client deserializing every Job and Pod state (statement 52, runtime half).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from dops.emulator.apiserver import ApiServer
from dops.emulator.controllers.job import JobController, _Backoff
from tests.builders import job
from tests.emulator.workloads import TRACKING, Cluster, condition, condition_types, running_cluster
from tests.helpers import eventually

JSON = dict


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("jobs")) as running:
        yield running


@pytest.fixture
def ns(cluster: Cluster) -> str:
    return cluster.namespace("job")


def _finished(obj: JSON) -> bool:
    return bool({"Complete", "Failed"} & set(condition_types(obj)))


# ---------------------------------------------------------------------------------------------- defaults


def test_create_defaults_selector_labels_and_template(cluster: Cluster, ns: str) -> None:
    """S12 / statement 55: a created Job gets a defaulted selector, template labels and pod defaults."""
    created = cluster.create(cluster.job_path(ns), job("defaults", ns, command=["true"], image="busybox"))
    uid = created["metadata"]["uid"]
    spec = created["spec"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "defaults",
        "controller-uid": uid,
        "job-name": "defaults",
    }
    assert spec["template"]["metadata"]["labels"] == labels
    assert created["metadata"]["labels"] == labels
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert "manualSelector" not in spec
    pod_spec = spec["template"]["spec"]
    container = pod_spec["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["imagePullPolicy"] == "Always"  # no tag
    assert (pod_spec["dnsPolicy"], pod_spec["schedulerName"], pod_spec["terminationGracePeriodSeconds"]) == (
        "ClusterFirst",
        "default-scheduler",
        30,
    )
    assert "status" not in created or created["status"] == {}

    parallel = cluster.create(cluster.job_path(ns), job("parallel", ns, command=["true"], parallelism=3))
    assert parallel["spec"]["parallelism"] == 3 and "completions" not in parallel["spec"]
    with_policy = job(
        "policy",
        ns,
        command=["true"],
        podFailurePolicy={"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
    )
    created = cluster.create(cluster.job_path(ns), with_policy)
    assert created["spec"]["podReplacementPolicy"] == "Failed"
    assert created["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda j: j["spec"]["template"]["spec"].update(restartPolicy="Always"),
            'Job.batch "bad" is invalid: spec.template.spec.restartPolicy: Required value: '
            'valid values: "OnFailure", "Never"',
        ),
        (
            lambda j: j["spec"]["template"]["spec"].pop("restartPolicy"),
            'Job.batch "bad" is invalid: spec.template.spec.restartPolicy: Required value: '
            'valid values: "OnFailure", "Never"',
        ),
        (
            lambda j: j["spec"]["template"]["spec"].update(containers=[]),
            'Job.batch "bad" is invalid: spec.template.spec.containers: Required value',
        ),
        (
            lambda j: (
                j["spec"].update(
                    podFailurePolicy={"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}}]}
                )
                or j["spec"]["template"]["spec"].update(restartPolicy="OnFailure")
            ),
            'Job.batch "bad" is invalid: spec.template.spec.restartPolicy: Invalid value: "OnFailure": '
            'only "Never" is supported when podFailurePolicy is specified',
        ),
    ],
    ids=["restartPolicy-Always", "restartPolicy-missing", "no-containers", "podFailurePolicy-OnFailure"],
)
def test_invalid_job_specs_get_real_422(cluster: Cluster, ns: str, mutate: object, message: str) -> None:
    """S12 / issue "Bad input": invalid Job specs get the real 422 Invalid messages."""
    body = job("bad", ns, command=["true"])
    mutate(body)  # type: ignore[operator]
    response = cluster.request("POST", cluster.job_path(ns), json=body)
    assert response.status_code == 422, response.text
    status = response.json()
    assert (status["reason"], status["message"]) == ("Invalid", message)
    assert status["details"]["kind"] == "Job" and status["details"]["group"] == "batch"


def test_invalid_job_names_get_real_422(cluster: Cluster, ns: str) -> None:
    """S12: an invalid name is a metadata.name error; a name over 63 characters breaks the job-name label."""
    response = cluster.request("POST", cluster.job_path(ns), json=job("Bad_Name", ns, command=["true"]))
    assert response.status_code == 422
    assert response.json()["message"].startswith(
        'Job.batch "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'
    )
    long_name = "x" * 64
    response = cluster.request("POST", cluster.job_path(ns), json=job(long_name, ns, command=["true"]))
    assert response.status_code == 422
    assert response.json()["message"] == (
        f'Job.batch "{long_name}" is invalid: spec.template.labels: Invalid value: "{long_name}": '
        "must be no more than 63 characters"
    )
    # Nothing was created, so no pods either.
    assert cluster.items(cluster.job_path(ns)) == []


def test_kubectl_reports_invalid_job(cluster: Cluster, ns: str) -> None:
    """S12: real kubectl prints the server's 422 for a Job with restartPolicy Always."""
    kubectl = cluster.kubectl()
    manifest = (
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: always\nspec:\n  template:\n    spec:\n"
        "      restartPolicy: Always\n      containers:\n      - name: main\n        image: busybox\n"
    )
    result = kubectl.run("apply", "-n", ns, "-f", "-", input=manifest, check=False)
    assert result.returncode == 1
    assert (
        'The Job "always" is invalid: spec.template.spec.restartPolicy: Required value: '
        'valid values: "OnFailure", "Never"' in result.stderr
    )


# ---------------------------------------------------------------------------------------------- lifecycle


def test_successful_job_lifecycle(cluster: Cluster, ns: str) -> None:
    """S12 / statement 55: pod shape, Pending → Running → Succeeded, counters and SuccessCriteriaMet → Complete."""
    created = cluster.create(cluster.job_path(ns), job("ok", ns, command=["true"]))
    uid = created["metadata"]["uid"]
    (pod,) = cluster.wait_pods(ns, "ok", 1)
    meta = pod["metadata"]
    assert meta["generateName"] == "ok-" and meta["name"].startswith("ok-") and len(meta["name"]) == 8
    assert meta["labels"] == created["spec"]["template"]["metadata"]["labels"]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "ok",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["finalizers"] == [TRACKING]
    assert pod["spec"]["containers"][0]["command"] == ["true"]
    assert pod["status"]["phase"] == "Pending"

    running = cluster.wait_job(ns, "ok", lambda j: j.get("status", {}).get("active") == 1, "active=1")
    status = running["status"]
    assert status["startTime"] and status["ready"] == 0 and status["terminating"] == 0
    assert status["uncountedTerminatedPods"] == {} and "conditions" not in status

    cluster.run_pod(pod)
    cluster.wait_job(ns, "ok", lambda j: j["status"].get("ready") == 1, "ready=1")

    cluster.finish_pod(pod, 0)
    done = cluster.wait_job(ns, "ok", _finished, "a finished Job")
    status = done["status"]
    assert [(c["type"], c["status"], c["reason"], c["message"]) for c in status["conditions"]] == [
        ("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
        ("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
    ]
    assert status["succeeded"] == 1 and "active" not in status and "failed" not in status
    assert status["completionTime"] == status["conditions"][1]["lastTransitionTime"]
    assert (status["ready"], status["terminating"], status["uncountedTerminatedPods"]) == (0, 0, {})
    finished_pod = cluster.get(cluster.pods_path(ns, meta["name"]))
    assert TRACKING not in (finished_pod["metadata"].get("finalizers") or [])
    assert finished_pod["status"]["phase"] == "Succeeded"  # the pod itself stays

    events = cluster.items(f"/api/v1/namespaces/{ns}/events")
    seen = {(e["reason"], e["message"], e["source"]["component"]) for e in events}
    assert ("SuccessfulCreate", f"Created pod: {meta['name']}", "job-controller") in seen
    assert ("Completed", "Job completed", "job-controller") in seen

    kubectl = cluster.kubectl()
    kubectl.run("wait", "-n", ns, "--for=condition=complete", "job/ok", "--timeout=10s")


def test_backoff_limit_exceeded(cluster: Cluster, ns: str) -> None:
    """S12 / statement 56: exit 3 with backoffLimit 1 → two failed pods, FailureTarget then Failed."""
    cluster.create(cluster.job_path(ns), job("fails", ns, command=["false"], backoff_limit=1))
    (first,) = cluster.wait_pods(ns, "fails", 1)
    cluster.run_pod(first)
    cluster.finish_pod(first, 3)
    second = cluster.wait_new_pod(ns, "fails", [first])
    counted = cluster.wait_job(ns, "fails", lambda j: j["status"].get("failed") == 1, "failed=1")
    assert "conditions" not in counted["status"]
    cluster.finish_pod(second, 3)
    failed = cluster.wait_job(ns, "fails", _finished, "a finished Job")
    status = failed["status"]
    assert [(c["type"], c["status"], c["reason"], c["message"]) for c in status["conditions"]] == [
        ("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        ("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    ]
    assert status["failed"] == 2 and "succeeded" not in status and "completionTime" not in status
    pods = cluster.job_pods(ns, "fails")
    assert len(pods) == 2
    for pod in pods:
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
        assert TRACKING not in (pod["metadata"].get("finalizers") or [])
    events = cluster.items(f"/api/v1/namespaces/{ns}/events")
    assert any(
        e["reason"] == "BackoffLimitExceeded" and e["type"] == "Warning" and e["involvedObject"]["name"] == "fails"
        for e in events
    )


def test_pod_failure_backoff_is_exponential_and_capped() -> None:
    """S12: pod-failure backoff is base·2ⁿ⁻¹ after n failures since the last success, capped (default 10 s, 6 min)."""
    api = ApiServer()
    controller = JobController(api)
    assert (controller.backoff_base, controller.backoff_max) == (10.0, 360.0)
    moment = api.clock.now()

    def remaining(failures: int) -> float:
        return controller.backoff_remaining(_Backoff(failures, moment))

    assert remaining(0) == 0.0
    assert [round(remaining(n)) for n in (1, 2, 3, 4, 5, 6, 7, 9)] == [10, 20, 40, 80, 160, 320, 360, 360]
    expired = _Backoff(1, datetime(2000, 1, 1, tzinfo=UTC))
    assert controller.backoff_remaining(expired) == 0.0


def test_on_failure_restarts_count_towards_backoff_limit(cluster: Cluster, ns: str) -> None:
    """S12: with restartPolicy OnFailure, container restarts of running pods reaching backoffLimit fail the Job."""
    body = job("restarts", ns, command=["false"], backoff_limit=2)
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    cluster.create(cluster.job_path(ns), body)
    (pod,) = cluster.wait_pods(ns, "restarts", 1)
    cluster.run_pod(pod, restarts=1)
    cluster.wait_job(ns, "restarts", lambda j: j["status"].get("active") == 1, "active=1")
    assert not _finished(cluster.job(ns, "restarts"))
    cluster.run_pod(pod, restarts=2)
    failed = cluster.wait_job(ns, "restarts", _finished, "a finished Job")
    assert condition_types(failed) == ["FailureTarget", "Failed"]
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    # The running pod was deleted (killed) and counted as a failure.
    eventually(lambda: cluster.job_pods(ns, "restarts"), lambda pods: pods == [], describe="the pod removed")
    assert cluster.job(ns, "restarts")["status"]["failed"] == 1


def test_active_deadline_kills_pods_and_fails_after_termination(cluster: Cluster, ns: str) -> None:
    """S12 / statement 58: past activeDeadlineSeconds active pods are deleted; Failed waits for them to terminate."""
    with cluster.graceful(ns):
        cluster.create(cluster.job_path(ns), job("deadline", ns, command=["sleep", "1000"], activeDeadlineSeconds=1))
        (pod,) = cluster.wait_pods(ns, "deadline", 1)
        cluster.run_pod(pod)
        target = cluster.wait_job(
            ns, "deadline", lambda j: condition(j, "FailureTarget") is not None, "FailureTarget", timeout=5
        )
        ft = condition(target, "FailureTarget")
        assert ft is not None
        assert (ft["reason"], ft["message"]) == ("DeadlineExceeded", "Job was active longer than specified deadline")
        # The pod is being killed (graceful deletion): the Job counts it as terminating, not yet Failed.
        terminating = cluster.get(cluster.pods_path(ns, pod["metadata"]["name"]))
        assert terminating["metadata"]["deletionTimestamp"]
        assert terminating["metadata"].get("deletionGracePeriodSeconds") == 30
        status = cluster.job(ns, "deadline")["status"]
        assert status["terminating"] == 1 and "active" not in status
        assert "Failed" not in condition_types(cluster.job(ns, "deadline"))
        # The kubelet stops the container, reports it and removes the pod.
        cluster.finish_pod(terminating, 137)
        cluster.remove_pod(terminating)
        failed = cluster.wait_job(ns, "deadline", _finished, "a finished Job")
    assert [(c["type"], c["reason"]) for c in failed["status"]["conditions"]] == [
        ("FailureTarget", "DeadlineExceeded"),
        ("Failed", "DeadlineExceeded"),
    ]
    assert failed["status"]["failed"] == 1 and failed["status"]["terminating"] == 0


def test_ttl_after_finished_deletes_job_and_pods(cluster: Cluster, ns: str) -> None:
    """S12 / statement 59: ttlSecondsAfterFinished 0 deletes the Job (Background) and the GC its pods."""
    cluster.create(cluster.job_path(ns), job("ttl", ns, command=["true"], ttlSecondsAfterFinished=0))
    (pod,) = cluster.wait_pods(ns, "ttl", 1)
    cluster.finish_pod(pod, 0)
    eventually(lambda: cluster.exists(cluster.job_path(ns, "ttl")), lambda e: not e, describe="the Job deleted")
    eventually(lambda: cluster.job_pods(ns, "ttl"), lambda pods: pods == [], describe="its pods deleted")

    cluster.create(cluster.job_path(ns), job("ttl2", ns, command=["true"], ttlSecondsAfterFinished=2))
    (pod,) = cluster.wait_pods(ns, "ttl2", 1)
    cluster.finish_pod(pod, 0)
    done = cluster.wait_job(ns, "ttl2", _finished, "a finished Job")
    assert "Complete" in condition_types(done)  # still there right after finishing …
    eventually(
        lambda: cluster.exists(cluster.job_path(ns, "ttl2")), lambda e: not e, timeout=10, describe="deleted after 2s"
    )


def test_suspend_and_resume(cluster: Cluster, ns: str) -> None:
    """S12: a suspended Job has no pods and Suspended=True; resuming starts it; suspending deletes active pods."""
    cluster.create(cluster.job_path(ns), job("paused", ns, command=["true"], suspend=True))
    suspended = cluster.wait_job(ns, "paused", lambda j: condition(j, "Suspended") is not None, "Suspended")
    cond = condition(suspended, "Suspended")
    assert cond is not None
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "JobSuspended", "Job suspended")
    assert "startTime" not in suspended["status"] and cluster.job_pods(ns, "paused") == []

    cluster.patch(cluster.job_path(ns, "paused"), {"spec": {"suspend": False}})
    (pod,) = cluster.wait_pods(ns, "paused", 1)
    resumed = cluster.wait_job(ns, "paused", lambda j: j["status"].get("active") == 1, "active=1")
    cond = condition(resumed, "Suspended")
    assert cond is not None
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "JobResumed", "Job resumed")
    assert resumed["status"]["startTime"]

    cluster.patch(cluster.job_path(ns, "paused"), {"spec": {"suspend": True}})
    eventually(lambda: cluster.job_pods(ns, "paused"), lambda pods: pods == [], describe="active pod deleted")
    again = cluster.wait_job(ns, "paused", lambda j: "Suspended" in condition_types(j), "Suspended again")
    assert "active" not in again["status"] and not _finished(again)
    reasons = [e["reason"] for e in cluster.items(f"/api/v1/namespaces/{ns}/events")]
    assert {"Suspended", "Resumed", "SuccessfulDelete"} <= set(reasons)
    del pod


def test_pod_failure_policy_ignore_count_and_fail_job(cluster: Cluster, ns: str) -> None:
    """S12: podFailurePolicy — DisruptionTarget ignored, Count counted, FailJob on an exit code fails the Job."""
    policy = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "Count", "onExitCodes": {"operator": "In", "values": [1]}},
        ]
    }
    cluster.create(cluster.job_path(ns), job("pfp", ns, command=["x"], backoff_limit=1, podFailurePolicy=policy))
    (first,) = cluster.wait_pods(ns, "pfp", 1)
    disruption = {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
        "lastTransitionTime": None,
        "lastProbeTime": None,
    }
    cluster.finish_pod(first, 137, conditions=[disruption])
    second = cluster.wait_new_pod(ns, "pfp", [first])
    job_now = cluster.wait_job(ns, "pfp", lambda j: j["status"].get("active") == 1, "replacement active")
    assert "failed" not in job_now["status"]  # ignored
    cluster.finish_pod(second, 1)
    third = cluster.wait_new_pod(ns, "pfp", [first, second])
    assert cluster.wait_job(ns, "pfp", lambda j: j["status"].get("failed") == 1, "failed=1")
    cluster.finish_pod(third, 42)
    failed = cluster.wait_job(ns, "pfp", _finished, "a finished Job")
    expected = (
        f"Container main for pod {ns}/{third['metadata']['name']} failed with exit code 42 "
        "matching FailJob rule at index 0"
    )
    assert [(c["type"], c["reason"], c["message"]) for c in failed["status"]["conditions"]] == [
        ("FailureTarget", "PodFailurePolicy", expected),
        ("Failed", "PodFailurePolicy", expected),
    ]
    assert failed["status"]["failed"] == 2


def test_pod_failure_policy_fail_job_on_condition(cluster: Cluster, ns: str) -> None:
    """S12: a FailJob rule on a pod condition names the pod and the condition."""
    policy = {"rules": [{"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    cluster.create(cluster.job_path(ns), job("pfc", ns, command=["x"], podFailurePolicy=policy))
    (pod,) = cluster.wait_pods(ns, "pfc", 1)
    disruption = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
    cluster.finish_pod(pod, 137, conditions=[disruption])
    failed = cluster.wait_job(ns, "pfc", _finished, "a finished Job")
    cond = condition(failed, "Failed")
    assert cond is not None
    assert cond["message"] == (
        f"Pod {ns}/{pod['metadata']['name']} has condition DisruptionTarget matching FailJob rule at index 0"
    )


def test_parallelism_and_completions(cluster: Cluster, ns: str) -> None:
    """S12: completions 3 / parallelism 2 keeps two pods active until three succeed."""
    cluster.create(cluster.job_path(ns), job("par", ns, command=["true"], parallelism=2, completions=3))
    first, second = cluster.wait_pods(ns, "par", 2)
    cluster.finish_pod(first, 0)
    third = cluster.wait_new_pod(ns, "par", [first, second])
    progress = cluster.wait_job(ns, "par", lambda j: j["status"].get("succeeded") == 1, "succeeded=1")
    assert progress["status"]["active"] == 2
    cluster.finish_pod(second, 0)
    cluster.wait_job(ns, "par", lambda j: j["status"].get("succeeded") == 2, "succeeded=2")
    # Only one completion is left: no fourth pod.
    assert len(cluster.job_pods(ns, "par")) == 3
    cluster.finish_pod(third, 0)
    done = cluster.wait_job(ns, "par", _finished, "a finished Job")
    assert done["status"]["succeeded"] == 3 and condition_types(done) == ["SuccessCriteriaMet", "Complete"]


def test_work_queue_job_completes_when_a_pod_succeeds_and_none_is_active(cluster: Cluster, ns: str) -> None:
    """S12: without completions, the Job completes once one pod succeeded and the others finished."""
    cluster.create(cluster.job_path(ns), job("queue", ns, command=["true"], parallelism=2))
    first, second = cluster.wait_pods(ns, "queue", 2)
    cluster.finish_pod(first, 0)
    cluster.wait_job(ns, "queue", lambda j: j["status"].get("succeeded") == 1, "succeeded=1")
    assert len(cluster.job_pods(ns, "queue")) == 2 and not _finished(cluster.job(ns, "queue"))
    cluster.finish_pod(second, 0)
    done = cluster.wait_job(ns, "queue", _finished, "a finished Job")
    assert done["status"]["succeeded"] == 2


def test_indexed_job(cluster: Cluster, ns: str) -> None:
    """S12: an Indexed Job gives each pod a completion index and reports completedIndexes."""
    cluster.create(
        cluster.job_path(ns), job("idx", ns, command=["true"], completions=3, parallelism=3, completionMode="Indexed")
    )
    pods = cluster.wait_pods(ns, "idx", 3)
    indexes = sorted(int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]) for p in pods)
    assert indexes == [0, 1, 2]
    for pod in pods:
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert pod["metadata"]["name"].startswith(f"idx-{index}-")
        assert pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == index
        assert pod["spec"]["hostname"] == f"idx-{index}"
        assert any(e["name"] == "JOB_COMPLETION_INDEX" for e in pod["spec"]["containers"][0]["env"])
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    cluster.finish_pod(by_index["1"], 0)
    partial = cluster.wait_job(ns, "idx", lambda j: j["status"].get("completedIndexes") == "1", "index 1 done")
    assert partial["status"]["succeeded"] == 1
    cluster.finish_pod(by_index["0"], 0)
    cluster.finish_pod(by_index["2"], 0)
    done = cluster.wait_job(ns, "idx", _finished, "a finished Job")
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3


# ---------------------------------------------------------------------------------------------- clients


def test_kubectl_get_jobs_table(cluster: Cluster, ns: str) -> None:
    """S10 / statement 36: real `kubectl get jobs` shows Name, Status, Completions, Duration, Age per state."""
    cluster.create(cluster.job_path(ns), job("t-running", ns, command=["true"]))
    cluster.create(cluster.job_path(ns), job("t-suspended", ns, command=["true"], suspend=True))
    cluster.create(cluster.job_path(ns), job("t-complete", ns, command=["true"], parallelism=2, completions=2))
    cluster.create(cluster.job_path(ns), job("t-failed", ns, command=["true"], backoff_limit=0))
    for pod in cluster.wait_pods(ns, "t-complete", 2):
        cluster.finish_pod(pod, 0)
    (failing,) = cluster.wait_pods(ns, "t-failed", 1)
    cluster.finish_pod(failing, 1)
    cluster.wait_job(ns, "t-complete", _finished, "t-complete finished")
    cluster.wait_job(ns, "t-failed", _finished, "t-failed finished")
    cluster.wait_job(ns, "t-suspended", lambda j: "Suspended" in condition_types(j), "t-suspended suspended")
    cluster.wait_pods(ns, "t-running", 1)

    output = cluster.kubectl().run("get", "jobs", "-n", ns).stdout.splitlines()
    assert output[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    rows = {line.split()[0]: line.split() for line in output[1:]}
    assert rows["t-running"][1:3] == ["Running", "0/1"]
    assert rows["t-suspended"][1:3] == ["Suspended", "0/1"]
    assert len(rows["t-suspended"]) == 4  # never started: an empty Duration cell
    assert len(rows["t-running"]) == 5
    assert rows["t-complete"][1:3] == ["Complete", "2/2"]
    assert rows["t-failed"][1:3] == ["Failed", "0/1"]
    assert rows["t-complete"][3].endswith("s")  # a duration like 0s or 1s


def test_kubernetes_client_deserializes_every_job_and_pod_state(cluster: Cluster, ns: str) -> None:
    """Statement 52 (runtime half): BatchV1Api/CoreV1Api read every Job and Pod state the controller produces."""
    import kubernetes

    client = cluster.kube_client()
    batch = kubernetes.client.BatchV1Api(client)
    core = kubernetes.client.CoreV1Api(client)
    cluster.create(cluster.job_path(ns), job("k-pending", ns, command=["true"], suspend=True))
    cluster.create(cluster.job_path(ns), job("k-running", ns, command=["true"]))
    cluster.create(cluster.job_path(ns), job("k-complete", ns, command=["true"]))
    cluster.create(cluster.job_path(ns), job("k-failed", ns, command=["true"], backoff_limit=0))
    (running,) = cluster.wait_pods(ns, "k-running", 1)
    cluster.run_pod(running)
    (complete,) = cluster.wait_pods(ns, "k-complete", 1)
    cluster.finish_pod(complete, 0)
    (failed,) = cluster.wait_pods(ns, "k-failed", 1)
    cluster.finish_pod(failed, 2)
    cluster.wait_job(ns, "k-complete", _finished, "k-complete finished")
    cluster.wait_job(ns, "k-failed", _finished, "k-failed finished")
    cluster.wait_job(ns, "k-running", lambda j: j["status"].get("ready") == 1, "k-running ready")
    cluster.wait_job(ns, "k-pending", lambda j: "Suspended" in condition_types(j), "k-pending suspended")

    states = {}
    for name in ("k-pending", "k-running", "k-complete", "k-failed"):
        read = batch.read_namespaced_job(name, ns)
        assert isinstance(read, kubernetes.client.V1Job)
        states[name] = read
    assert states["k-running"].status.active == 1 and states["k-running"].status.ready == 1
    assert [c.type for c in states["k-complete"].status.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert states["k-complete"].status.completion_time is not None
    assert [c.type for c in states["k-failed"].status.conditions] == ["FailureTarget", "Failed"]
    assert states["k-failed"].status.failed == 1
    assert states["k-pending"].status.conditions[0].reason == "JobSuspended"
    assert states["k-pending"].spec.selector.match_labels["batch.kubernetes.io/controller-uid"]
    listed = batch.list_namespaced_job(ns)
    assert {j.metadata.name for j in listed.items} == set(states)
    pods = core.list_namespaced_pod(ns)
    assert {p.status.phase for p in pods.items} == {"Running", "Succeeded", "Failed"}
    for pod in pods.items:
        assert pod.metadata.owner_references[0].kind == "Job"
    events = core.list_namespaced_event(ns)
    assert any(e.reason == "SuccessfulCreate" for e in events.items)


def test_job_table_status_precedence_includes_interim_conditions() -> None:
    """S10: the Jobs printer's Status: Complete, Failed, Terminating, Suspended, FailureTarget, SuccessCriteriaMet."""
    from dops.emulator import tables

    def status_of(conditions: list[str], deleting: bool = False) -> str:
        meta: JSON = {"name": "j", "creationTimestamp": "2025-01-01T00:00:00Z"}
        if deleting:
            meta["deletionTimestamp"] = "2025-01-01T00:00:01Z"
        obj = {
            "metadata": meta,
            "spec": {"completions": 1, "template": {"spec": {"containers": []}}},
            "status": {"conditions": [{"type": c, "status": "True"} for c in conditions]},
        }
        return str(tables._print_job(obj, datetime(2025, 1, 1, 0, 1, tzinfo=UTC))[1])

    assert status_of(["SuccessCriteriaMet"]) == "SuccessCriteriaMet"
    assert status_of(["SuccessCriteriaMet", "Complete"]) == "Complete"
    assert status_of(["FailureTarget"]) == "FailureTarget"
    assert status_of(["FailureTarget", "Failed"]) == "Failed"
    assert status_of(["FailureTarget"], deleting=True) == "Terminating"
    assert status_of(["Suspended"]) == "Suspended"
    assert status_of([]) == "Running"
