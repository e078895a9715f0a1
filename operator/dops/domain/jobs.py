"""The batch/v1 Job that runs one attempt of an operation: `build_job(op, target, settings, attempt)` (pure).

Decisions, each a guard against a known failure class (prior-art.md §3.2, §7):

- **Deterministic name** `<operation>-<attempt>` (≤ 63 characters; long names keep a prefix plus a
  hash of the full name), never `generateName`: a second create of the same attempt is AlreadyExists
  and is adopted, so there is never a second Job per attempt.
- **ownerReference** (controller) to the DelegatedOperation: deleting the operation deletes its Jobs
  and pods; no finalizer is needed.
- **Labels** `app.kubernetes.io/managed-by=dops` (the operator watches only those Jobs and pods),
  `dops.io/operation` (label-safe form of the name; the full `NAMESPACE/NAME` is the
  `dops.io/operation` annotation), `dops.io/operation-uid`, `dops.io/attempt` and the target.
- `backoffLimit` = retries (operation, else target, else operator default 0),
  `activeDeadlineSeconds` = timeoutSeconds (operation, else target, else operator default),
  `restartPolicy: Never`, `podReplacementPolicy: Failed` (a replacement never overlaps a terminating
  pod), and a `podFailurePolicy` that (1) ignores disruptions (`DisruptionTarget`: evictions,
  preemption, node drain do not count as retries; the operator caps them at the target's
  `maxDisruptionRetries`, and 0 makes the rule `FailJob`) and (2) fails the Job at once when the worker exits
  3 ("the operation failed and its failure is recorded") or 4 ("the API stayed unreachable; the outcome
  is in the termination message"), which no retry can fix. Exit 1 is left to Python crashes, which
  retries may cure.
- A **restricted** pod: non-root uid 65532, no privilege escalation, all capabilities dropped,
  RuntimeDefault seccomp, read-only root filesystem with an `emptyDir` on /tmp (HOME=/tmp).
- The container is named `worker`, runs the target's image with `args: [worker, run, NS/NAME]`
  (the image's entrypoint is `dops`), gets its run link in `DOPS_RUN_LINK` (the pod name filled in by the
  kubelet's `$(DOPS_POD_NAME)` expansion), and reports failures through its termination message, falling
  back to the log tail (`FallbackToLogsOnError`).
- The target's pod template overrides (labels, annotations, serviceAccountName, nodeSelector,
  resources, tolerations, env) are applied without ever replacing dops' own labels or identity env.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ..api import constants as c
from .labels import label_value
from .names import shortened
from .progress import ENV_PROGRESS_INTERVAL
from .runlink import WORKER_CONTAINER, effective_template, render_run_link
from .settings import OperatorSettings
from .targets import Target

JSON = dict[str, Any]
MAX_JOB_NAME = 63
RUN_AS_USER = 65532
TERMINATION_GRACE_SECONDS = 30
# Exit code with which the worker says "the operation failed and its failure is recorded in the status"
# (1 is Python's own code for an unhandled exception: a crash, which says nothing about the operation).
WORKER_FAILED_EXIT_CODE = 3
# Exit code with which the worker says "the API stayed unreachable: my outcome is only in my termination message".
WORKER_UNRECORDED_EXIT_CODE = 4

ATTEMPT_LABEL = "dops.io/attempt"
OPERATION_UID_LABEL = "dops.io/operation-uid"
OPERATION_ANNOTATION = "dops.io/operation"  # NAMESPACE/NAME, unhashed
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"

# Env vars the worker container always gets (a target's env cannot replace them).
ENV_OPERATION = "DOPS_OPERATION"
ENV_ATTEMPT = "DOPS_ATTEMPT"
ENV_OPERATION_UID = "DOPS_OPERATION_UID"  # the worker fences its writes by it (a re-created operation is another)
ENV_JOB_NAME = "DOPS_JOB_NAME"
ENV_POD_NAME = "DOPS_POD_NAME"
ENV_POD_NAMESPACE = "DOPS_POD_NAMESPACE"
ENV_RUN_LINK = "DOPS_RUN_LINK"  # the rendered run link; `$(DOPS_POD_NAME)` is expanded by the kubelet
ENV_ALLOW_IMPORT_PATHS = "DOPS_ALLOW_IMPORT_PATHS"
ENV_TARGET = "DOPS_DELEGATION_TARGET"
# Also what the operator decided at admission: allowImportPaths reaches the worker only through the Job's env
# (issue 13), so a target's env cannot turn it on behind a policy that forbids allowImportPaths.
_IDENTITY_ENV = frozenset(
    {
        ENV_OPERATION,
        ENV_ATTEMPT,
        ENV_OPERATION_UID,
        ENV_JOB_NAME,
        ENV_POD_NAME,
        ENV_POD_NAMESPACE,
        ENV_RUN_LINK,
        ENV_TARGET,
        ENV_ALLOW_IMPORT_PATHS,
        ENV_PROGRESS_INTERVAL,
    }
)


# The API server's name generator keeps at most 58 characters of a generateName (`<job>-`) and appends 5.
_GENERATED_BASE = 58
_GENERATED_SUFFIX = 5


def is_pod_of_job(pod: str, job: str) -> bool:
    """Whether `pod` has the name the Job controller gives `job`'s pods (generateName `<job>-` + 5 characters).

    The worker trusts it instead of reading the earlier pod (issue 13: workers get no `pods get`): with
    `podReplacementPolicy: Failed` the Job controller starts a pod only once the earlier ones are Failed."""
    base = f"{job}-"[:_GENERATED_BASE]
    return bool(job) and len(pod) == len(base) + _GENERATED_SUFFIX and pod.startswith(base)


def job_name(operation: str, attempt: int) -> str:
    """`<operation>-<attempt>`, or `<prefix>-<hash8>-<attempt>` when that would exceed 63 characters."""
    if attempt < 1:
        raise ValueError(f"attempt must be ≥ 1, not {attempt}")
    return shortened(operation, MAX_JOB_NAME, f"-{attempt}")


def operation_ref(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def effective_retries(spec: Mapping[str, Any], target: Target) -> int:
    retries = _int(spec.get("retries"))
    return retries if retries is not None and retries >= 0 else target.retries


def effective_timeout(spec: Mapping[str, Any], target: Target) -> int | None:
    timeout = _int(spec.get("timeoutSeconds"))
    return timeout if timeout and timeout > 0 else target.timeout_seconds


def owner_reference(op: Mapping[str, Any]) -> JSON:
    meta = op.get("metadata") or {}
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _merge_env(ours: list[JSON], theirs: list[Any]) -> list[JSON]:
    """Ours, then the target's; a target variable replaces one of ours by name, except identity ones."""
    merged: dict[str, JSON] = {e["name"]: e for e in ours}
    for item in theirs:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        name = str(item["name"])
        if name in _IDENTITY_ENV:
            continue
        merged[name] = copy.deepcopy(dict(item))
    return list(merged.values())


def build_job(
    op: Mapping[str, Any],
    target: Target,
    settings: OperatorSettings,
    attempt: int,
    *,
    server_url: str = "",
) -> JSON:
    """The Job for attempt `attempt` of operation `op` on `target` (see the module docstring).

    `server_url` is the API server URL for the default run link (settings.api_server_url wins).
    """
    meta = op.get("metadata") or {}
    spec = op.get("spec") or {}
    namespace = str(meta["namespace"])
    name = str(meta["name"])
    ref = operation_ref(namespace, name)
    jname = job_name(name, attempt)
    overrides: Mapping[str, Any] = target.pod_template or {}

    labels = {
        c.NAME_LABEL: "dops-worker",
        c.PART_OF_LABEL: "dops",
        c.MANAGED_BY_LABEL: c.MANAGED_BY,
        c.OPERATION_LABEL: label_value(name),
        OPERATION_UID_LABEL: str(meta["uid"]),
        ATTEMPT_LABEL: str(attempt),
        c.TARGET_LABEL: label_value(target.name),
    }
    pod_labels = {c.NAME_LABEL: labels[c.NAME_LABEL], c.PART_OF_LABEL: labels[c.PART_OF_LABEL]}
    pod_labels.update({str(k): str(v) for k, v in (overrides.get("labels") or {}).items()})
    # A target may relabel name/part-of, never the labels the operator selects and maps pods by.
    pod_labels.update({k: v for k, v in labels.items() if k not in (c.NAME_LABEL, c.PART_OF_LABEL)})
    pod_annotations = {str(k): str(v) for k, v in (overrides.get("annotations") or {}).items()}
    pod_annotations[OPERATION_ANNOTATION] = ref

    run_link = pod_run_link(
        _run_link_template(target, settings, server_url),
        namespace=namespace,
        job=jname,
        operation=name,
        attempt=attempt,
    )
    env: list[JSON] = [
        {"name": ENV_OPERATION, "value": ref},
        {"name": ENV_ATTEMPT, "value": str(attempt)},
        {"name": ENV_OPERATION_UID, "value": str(meta["uid"])},
        {"name": ENV_JOB_NAME, "value": jname},
        {"name": ENV_TARGET, "value": target.name},
        {"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": ENV_POD_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": ENV_RUN_LINK, "value": run_link},
        {"name": ENV_ALLOW_IMPORT_PATHS, "value": "true" if target.allow_import_paths else "false"},
        {"name": ENV_PROGRESS_INTERVAL, "value": str(target.progress_interval_seconds)},
        {"name": "HOME", "value": "/tmp"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    container: JSON = {
        "name": WORKER_CONTAINER,
        "image": target.image or settings.worker_image,
        "args": ["worker", "run", ref],
        "env": _merge_env(env, list(overrides.get("env") or [])),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if target.image_pull_policy:
        container["imagePullPolicy"] = target.image_pull_policy
    if overrides.get("resources"):
        container["resources"] = copy.deepcopy(dict(overrides["resources"]))

    pod_spec: JSON = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    service_account = overrides.get("serviceAccountName") or settings.worker_service_account
    if service_account:
        pod_spec["serviceAccountName"] = str(service_account)
    if overrides.get("nodeSelector"):
        pod_spec["nodeSelector"] = {str(k): str(v) for k, v in overrides["nodeSelector"].items()}
    if overrides.get("tolerations"):
        pod_spec["tolerations"] = copy.deepcopy(list(overrides["tolerations"]))

    job_spec: JSON = {
        "backoffLimit": effective_retries(spec, target),
        "podReplacementPolicy": "Failed",
        "podFailurePolicy": {
            "rules": [
                {
                    # Re-run a disrupted worker (the operator caps how often: maxDisruptionRetries), or never.
                    "action": "Ignore" if target.max_disruption_retries > 0 else "FailJob",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": WORKER_CONTAINER,
                        "operator": "In",
                        "values": [WORKER_FAILED_EXIT_CODE, WORKER_UNRECORDED_EXIT_CODE],
                    },
                },
            ]
        },
        "template": {
            "metadata": {"labels": pod_labels, "annotations": pod_annotations},
            "spec": pod_spec,
        },
    }
    timeout = effective_timeout(spec, target)
    if timeout:
        job_spec["activeDeadlineSeconds"] = timeout

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": jname,
            "namespace": namespace,
            "labels": labels,
            "annotations": {OPERATION_ANNOTATION: ref},
            "ownerReferences": [owner_reference(op)],
        },
        "spec": job_spec,
    }


_POD_SENTINEL = "dopspodnameplaceholder"


def pod_run_link(template: str, *, namespace: str, job: str, operation: str, attempt: int) -> str:
    """The run link with the pod name left as `$(DOPS_POD_NAME)`, which the kubelet expands in the worker's env
    (a literal `$` is doubled, Kubernetes' escape). "" when the template renders no valid link."""
    try:
        link = render_run_link(
            template, namespace=namespace, pod=_POD_SENTINEL, job=job, operation=operation, attempt=attempt
        )
    except ValueError:
        return ""
    return link.replace("$", "$$").replace(_POD_SENTINEL, f"$({ENV_POD_NAME})")


def _run_link_template(target: Target, settings: OperatorSettings, server_url: str) -> str:
    return effective_template(
        target.run_link_template, settings.run_link_template, settings.api_server_url or server_url
    )


def job_ttl_patch(seconds: int) -> JSON:
    """Merge patch giving a finished Job a TTL (its pods go with it), once its log is archived."""
    return {"spec": {"ttlSecondsAfterFinished": max(0, int(seconds))}}
