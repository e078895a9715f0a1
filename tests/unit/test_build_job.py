"""build_job / job_name / run links / target resolution (dops.domain.jobs, runlink, targets): table tests.

Aspects covered (issue 5, "Operator"):
- deterministic Job name ≤ 63 characters (long names: prefix + hash + attempt), unique per attempt;
- ownerReference (controller) to the operation; labels managed-by=dops, dops.io/operation (label-safe),
  operation uid, attempt, target; the full NS/NAME in an annotation;
- backoffLimit from spec.retries → target → operator default (0); activeDeadlineSeconds from
  spec.timeoutSeconds → target → operator default (none);
- restartPolicy Never, podReplacementPolicy Failed, podFailurePolicy: DisruptionTarget → Ignore,
  worker exit code 1 → FailJob;
- restricted security context (runAsNonRoot, uid 65532, no privilege escalation, drop ALL,
  RuntimeDefault seccomp, read-only root filesystem + emptyDir /tmp);
- container `worker`, the target's image, args [worker, run, NS/NAME], FallbackToLogsOnError;
- the target's pod template overrides (labels, annotations, serviceAccountName, nodeSelector,
  resources, tolerations, env) without replacing dops' labels or identity env;
- run link: default API-server pod-log path, templates with placeholders, the `$(DOPS_POD_NAME)`
  form handed to the worker; target resolution (default / named / unknown / external).
"""

from __future__ import annotations

import pytest

from dops.domain.jobs import build_job, is_pod_of_job, job_name, job_ttl_patch, pod_run_link
from dops.domain.labels import is_valid_label_value
from dops.domain.runlink import default_template, effective_template, pod_log_path, render_run_link
from dops.domain.settings import OperatorSettings
from dops.domain.targets import builtin_target, resolve_target, target_from_resource
from tests.workload_builders import operation, target

SETTINGS = OperatorSettings(worker_image="ghcr.io/dops-dev/dops:0.1.0", worker_service_account="dops-worker")


def env_of(job: dict[str, object]) -> dict[str, object]:
    container = job["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "attempt", "expected"),
    [
        ("op", 1, "op-1"),
        ("dop-0ua3k9d2m1v7qk4r-count", 12, "dop-0ua3k9d2m1v7qk4r-count-12"),
        ("a" * 61, 1, "a" * 61 + "-1"),
    ],
)
def test_job_name_short_names(name: str, attempt: int, expected: str) -> None:
    assert job_name(name, attempt) == expected


def test_job_name_long_names_are_hashed_deterministically_and_fit() -> None:
    long = "x" * 100 + ".y"
    first = job_name(long, 3)
    assert len(first) <= 63 and first.endswith("-3")
    assert first == job_name(long, 3)  # deterministic
    assert job_name(long, 4) != first  # one name per attempt
    assert job_name("x" * 100 + ".z", 3) != first  # different operations differ
    assert job_name(long, 3).split("-")[-2] != job_name("x" * 101, 3).split("-")[-2]
    with pytest.raises(ValueError):
        job_name("op", 0)


def test_job_identity_labels_and_owner() -> None:
    op = operation("dop-0ua3k9d2m1v7qk4r-count", "team-a", uid="1234-uid")
    job = build_job(op, builtin_target("team-a", SETTINGS), SETTINGS, 2)
    meta = job["metadata"]
    assert meta["name"] == "dop-0ua3k9d2m1v7qk4r-count-2"
    assert meta["namespace"] == "team-a"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "dops.io/v1alpha1",
            "kind": "DelegatedOperation",
            "name": "dop-0ua3k9d2m1v7qk4r-count",
            "uid": "1234-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "dops"
    assert meta["labels"]["dops.io/operation"] == "dop-0ua3k9d2m1v7qk4r-count"
    assert meta["labels"]["dops.io/operation-uid"] == "1234-uid"
    assert meta["labels"]["dops.io/attempt"] == "2"
    assert meta["annotations"]["dops.io/operation"] == "team-a/dop-0ua3k9d2m1v7qk4r-count"
    template_meta = job["spec"]["template"]["metadata"]
    assert template_meta["labels"]["app.kubernetes.io/managed-by"] == "dops"
    assert template_meta["annotations"]["dops.io/operation"] == "team-a/dop-0ua3k9d2m1v7qk4r-count"
    assert "generateName" not in meta


def test_long_operation_names_get_valid_label_values() -> None:
    op = operation("n" * 200, "ns")
    job = build_job(op, builtin_target("ns", SETTINGS), SETTINGS, 1)
    assert len(job["metadata"]["name"]) <= 63
    for value in job["metadata"]["labels"].values():
        assert is_valid_label_value(value), value
    assert job["metadata"]["annotations"]["dops.io/operation"] == "ns/" + "n" * 200


def test_pod_spec_is_restricted_and_runs_the_worker() -> None:
    op = operation("op", "ns")
    job = build_job(op, builtin_target("ns", SETTINGS), SETTINGS, 1)
    spec = job["spec"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert spec["podReplacementPolicy"] == "Failed"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == "dops-worker"
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    (container,) = pod["containers"]
    assert container["name"] == "worker"
    assert container["image"] == "ghcr.io/dops-dev/dops:0.1.0"
    assert container["args"] == ["worker", "run", "ns/op"]
    assert "command" not in container  # the image's entrypoint (dops) runs
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    env = env_of(job)
    assert env["DOPS_OPERATION"] == "ns/op"
    assert env["DOPS_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["HOME"] == "/tmp"


def test_pod_failure_policy_ignores_disruptions_and_fails_on_recorded_failures() -> None:
    job = build_job(operation(), builtin_target("ns", SETTINGS), SETTINGS, 1)
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "worker", "operator": "In", "values": [3, 4]},
    }


@pytest.mark.parametrize(
    ("op_spec", "target_spec", "settings", "retries", "deadline"),
    [
        ({}, None, OperatorSettings(), 0, None),
        ({}, None, OperatorSettings(default_retries=2, default_timeout_seconds=600), 2, 600),
        ({"retries": 1, "timeoutSeconds": 30}, None, OperatorSettings(default_retries=2), 1, 30),
        ({}, {"retries": 3, "timeoutSeconds": 90}, OperatorSettings(default_retries=2), 3, 90),
        ({"retries": 0, "timeoutSeconds": 5}, {"retries": 3, "timeoutSeconds": 90}, OperatorSettings(), 0, 5),
        ({}, {}, OperatorSettings(default_retries=4, default_timeout_seconds=7), 4, 7),
    ],
)
def test_retries_and_timeout_precedence(
    op_spec: dict[str, int],
    target_spec: dict[str, int] | None,
    settings: OperatorSettings,
    retries: int,
    deadline: int | None,
) -> None:
    op = operation()
    op["spec"].update(op_spec)
    resolved = (
        target_from_resource(target("t", **target_spec), settings)
        if target_spec is not None
        else builtin_target("ns", settings)
    )
    spec = build_job(op, resolved, settings, 1)["spec"]
    assert spec["backoffLimit"] == retries
    assert spec.get("activeDeadlineSeconds") == deadline


def test_target_pod_template_overrides() -> None:
    t = target_from_resource(
        target(
            "gpu",
            image="registry.example.com/dops-gpu:2",
            imagePullPolicy="Always",
            podTemplate={
                "labels": {
                    "team": "vision",
                    "app.kubernetes.io/managed-by": "someone-else",
                    "app.kubernetes.io/part-of": "vision-stack",
                },
                "annotations": {"cost-center": "42"},
                "serviceAccountName": "gpu-runner",
                "nodeSelector": {"accelerator": "a100"},
                "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "8Gi"}},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "env": [
                    {"name": "DOPS_LOG_LEVEL", "value": "DEBUG"},
                    {"name": "HOME", "value": "/home/worker"},
                    {"name": "DOPS_OPERATION", "value": "hijack/attempt"},
                ],
            },
        ),
        SETTINGS,
    )
    job = build_job(operation(), t, SETTINGS, 1)
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "vision"
    assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "dops"  # what the operator selects on wins
    assert pod["metadata"]["labels"]["dops.io/operation"] == "op"
    assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "vision-stack"  # informational labels may change
    assert pod["metadata"]["annotations"]["cost-center"] == "42"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "gpu-runner"
    assert spec["nodeSelector"] == {"accelerator": "a100"}
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    container = spec["containers"][0]
    assert container["image"] == "registry.example.com/dops-gpu:2"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {"limits": {"nvidia.com/gpu": 1, "memory": "8Gi"}}
    env = env_of(job)
    assert env["DOPS_LOG_LEVEL"] == "DEBUG"
    assert env["HOME"] == "/home/worker"  # a target may replace convenience variables
    assert env["DOPS_OPERATION"] == "ns/op"  # but never the operation's identity
    assert job["metadata"]["labels"]["dops.io/target"] == "gpu"


def test_no_service_account_when_none_is_configured() -> None:
    settings = OperatorSettings(worker_service_account="")
    job = build_job(operation(), builtin_target("ns", settings), settings, 1)
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]


def test_job_ttl_patch() -> None:
    assert job_ttl_patch(600) == {"spec": {"ttlSecondsAfterFinished": 600}}


# --------------------------------------------------------------------------------------------- run links


def test_default_run_link_is_the_pod_log_path() -> None:
    template = default_template("https://kube.example.com:6443/")
    link = render_run_link(template, namespace="team-a", pod="op-1-abcde", job="op-1", operation="op")
    assert link == "https://kube.example.com:6443/api/v1/namespaces/team-a/pods/op-1-abcde/log?container=worker"
    assert link.endswith(pod_log_path("team-a", "op-1-abcde"))


@pytest.mark.parametrize(
    ("target_template", "settings_template", "expected"),
    [
        (None, "", "https://k/api/v1/namespaces/ns/pods/p/log?container=worker"),
        (None, "https://grafana/explore?ns={namespace}&pod={pod}", "https://grafana/explore?ns=ns&pod=p"),
        (
            "https://logs/{namespace}/{operation}/{job}/{attempt}/{container}",
            "https://ignored/{pod}",
            "https://logs/ns/op/op-1/1/worker",
        ),
    ],
)
def test_run_link_templates(target_template: str | None, settings_template: str, expected: str) -> None:
    template = effective_template(target_template, settings_template, "https://k")
    assert render_run_link(template, namespace="ns", pod="p", job="op-1", operation="op", attempt=1) == expected


def test_run_link_errors() -> None:
    with pytest.raises(ValueError, match="invalid run-link template"):
        render_run_link("https://x/{pod", pod="p")
    with pytest.raises(ValueError, match="longer than 2048"):
        render_run_link("https://x/" + "a" * 2100, pod="p")
    assert render_run_link("https://x/{unknown}/{pod}", pod="p") == "https://x/{unknown}/p"


def test_run_link_handed_to_the_worker_leaves_the_pod_to_the_kubelet() -> None:
    link = pod_run_link(default_template("https://k"), namespace="ns", job="op-1", operation="op", attempt=1)
    assert link == "https://k/api/v1/namespaces/ns/pods/$(DOPS_POD_NAME)/log?container=worker"
    dollar = pod_run_link("https://x/$price/{pod}", namespace="ns", job="j", operation="o", attempt=1)
    assert dollar == "https://x/$$price/$(DOPS_POD_NAME)"
    job = build_job(operation(), builtin_target("ns", SETTINGS), SETTINGS, 1, server_url="https://k")
    env = [e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert env.index("DOPS_POD_NAME") < env.index("DOPS_RUN_LINK")  # $(VAR) needs the variable defined first
    assert env_of(job)["DOPS_RUN_LINK"] == link


# --------------------------------------------------------------------------------------------- targets


def test_target_resolution() -> None:
    targets = {("ns", "gpu"): target_from_resource(target("gpu", maxConcurrent=2), SETTINGS)}
    builtin = resolve_target("ns", None, targets, SETTINGS)
    assert builtin is not None and builtin.builtin and builtin.max_concurrent == SETTINGS.default_max_concurrent
    assert resolve_target("ns", "default", targets, SETTINGS) == builtin
    named = resolve_target("ns", "gpu", targets, SETTINGS)
    assert named is not None and named.max_concurrent == 2 and not named.builtin
    assert resolve_target("ns", "missing", targets, SETTINGS) is None
    assert resolve_target("other", "gpu", targets, SETTINGS) is None
    targets[("ns", "default")] = target_from_resource(target("default", namespace="ns", maxConcurrent=1), SETTINGS)
    replaced = resolve_target("ns", "", targets, SETTINGS)
    assert replaced is not None and replaced.max_concurrent == 1 and not replaced.builtin
    external = target_from_resource(target("ext", mode="external"), SETTINGS)
    assert external.external


@pytest.mark.parametrize("allowed", [False, True])
def test_a_targets_env_cannot_grant_import_paths_or_change_the_fence(allowed: bool) -> None:
    """issue 13: allowImportPaths reaches the worker only as decided at admission (the target's field, which a
    DelegationPolicy may forbid), never through a DOPS_ALLOW_IMPORT_PATHS of the target's own env; the operation
    uid the worker fences its writes by cannot be replaced either."""
    t = target_from_resource(
        target(
            "t",
            allowImportPaths=allowed,
            podTemplate={
                "env": [
                    {"name": "DOPS_ALLOW_IMPORT_PATHS", "value": "false" if allowed else "true"},
                    {"name": "DOPS_OPERATION_UID", "value": "someone-else"},
                ]
            },
        ),
        SETTINGS,
    )
    env = env_of(build_job(operation(), t, SETTINGS, 1))
    assert env["DOPS_ALLOW_IMPORT_PATHS"] == ("true" if allowed else "false")
    assert env["DOPS_OPERATION_UID"] != "someone-else"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, "10"),  # unset: the default, which keeps 1,000 running operations under 100 writes/s
        ({"progressIntervalSeconds": 2}, "2"),
        ({"progressIntervalSeconds": 0}, "0"),  # every report, as fast as the writes complete
        ({"progressIntervalSeconds": -1}, "10"),  # the CRD refuses it; a stored one falls back to the default
        (
            {
                "progressIntervalSeconds": 2,
                "podTemplate": {"env": [{"name": "DOPS_PROGRESS_INTERVAL_SECONDS", "value": "0"}]},
            },
            "2",
        ),
    ],
)
def test_progress_interval_reaches_the_worker_from_the_target(spec: dict[str, object], expected: str) -> None:
    """issue 15: the target's progressIntervalSeconds is the worker's $DOPS_PROGRESS_INTERVAL_SECONDS (the field
    decides, not the target's own env); the built-in default target has the default too."""
    env = env_of(build_job(operation(), target_from_resource(target("t", **spec), SETTINGS), SETTINGS, 1))
    assert env["DOPS_PROGRESS_INTERVAL_SECONDS"] == expected
    assert (
        env_of(build_job(operation(), builtin_target("ns", SETTINGS), SETTINGS, 1))["DOPS_PROGRESS_INTERVAL_SECONDS"]
        == "10"
    )


@pytest.mark.parametrize(
    ("pod", "job", "mine"),
    [
        ("op-1-abcde", "op-1", True),
        ("op-1-1-abcde", "op-1", False),  # op-1-1's pod (another operation's Job), same prefix
        ("op-1-abcd", "op-1", False),
        ("op-2-abcde", "op-1", False),
        ("x" * 58 + "abcde", "x" * 60, True),  # the name generator keeps 58 characters of `<job>-`
        ("x" * 57 + "-abcde", "x" * 57, True),
        ("anything", "", False),
    ],
)
def test_is_pod_of_job(pod: str, job: str, mine: bool) -> None:
    """issue 13: a Job retry pod recognises an earlier pod of its own Job by name (no `pods get`); the chart's
    worker admission policy applies the same rule in CEL."""
    assert is_pod_of_job(pod, job) is mine
