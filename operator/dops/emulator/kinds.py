"""Built-in resource types and the per-kind defaulting and validation a real API server applies.

Only what our clients observe is modelled: the kinds dops, kopf, kubectl and helm touch, the
defaults the strict `kubernetes` client models need (P6) and the validation errors users meet
(invalid names, pods without containers, Jobs with a bad restartPolicy). Everything else about a
built-in object is stored as sent. Job defaulting lives here too because in Kubernetes it is the
API server (not the Job controller) that fills the selector and template labels on create.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable
from typing import Any

from . import errors
from .registry import PrinterColumn, ResourceType

JSON = dict[str, Any]

_OBJ = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        False,
        ("ns",),
        (),
        frozenset({"status"}),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("status.phase",),
    ),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        True,
        ("po",),
        ("all",),
        frozenset({"status", "log"}),
        _OBJ,
        (
            "status.phase",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.serviceAccountName",
            "spec.schedulerName",
            "status.podIP",
            "status.nominatedNodeName",
        ),
    ),
    ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    ResourceType("", "v1", "Secret", "secrets", "secret", True, (), (), frozenset(), _OBJ, ("type",)),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",)),
    ResourceType(
        "",
        "v1",
        "Service",
        "services",
        "service",
        True,
        ("svc",),
        ("all",),
        frozenset({"status"}),
        _OBJ,
        ("spec.clusterIP", "spec.type"),
    ),
    ResourceType(
        "",
        "v1",
        "Event",
        "events",
        "event",
        True,
        ("ev",),
        (),
        frozenset(),
        _OBJ,
        (
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ),
    ),
    ResourceType(
        "", "v1", "Node", "nodes", "node", False, ("no",), (), frozenset({"status"}), _OBJ, ("spec.unschedulable",)
    ),
    ResourceType(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        True,
        ("pvc",),
        (),
        frozenset({"status"}),
    ),
    ResourceType("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",)),
    ResourceType(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        True,
        ("ev",),
        (),
        frozenset(),
        _OBJ,
        (
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ),
    ),
    ResourceType(
        "batch", "v1", "Job", "jobs", "job", True, (), ("all",), frozenset({"status"}), _OBJ, ("status.successful",)
    ),
    ResourceType("batch", "v1", "CronJob", "cronjobs", "cronjob", True, ("cj",), ("all",), frozenset({"status"})),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        True,
        ("deploy",),
        ("all",),
        frozenset({"status", "scale"}),
    ),
    ResourceType(
        "apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",), ("all",), frozenset({"status", "scale"})
    ),
    ResourceType(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        True,
        ("sts",),
        ("all",),
        frozenset({"status", "scale"}),
    ),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ("ds",), ("all",), frozenset({"status"})),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", False),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", False
    ),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    # Stored, never enforced (docs/GAPS.md): the chart ships them; admission is the real API server's.
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        "validatingadmissionpolicy",
        False,
        (),
        ("api-extensions",),
        frozenset({"status"}),
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        "validatingadmissionpolicybinding",
        False,
        (),
        ("api-extensions",),
    ),
    ResourceType(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        True,
        ("pdb",),
        (),
        frozenset({"status"}),
    ),
    ResourceType("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", True, ("netpol",)),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        False,
        ("crd", "crds"),
        ("api-extensions",),
        frozenset({"status"}),
    ),
)

# Kinds whose metadata.generation the apiserver maintains (the others never get one).
GENERATION_KINDS = frozenset(
    {
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "pods"),
        ("policy", "poddisruptionbudgets"),
        ("networking.k8s.io", "networkpolicies"),
    }
)

_ = PrinterColumn  # built-in printers live in tables.py

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Path-segment names (RBAC roles, events, …) only forbid "/" and "%" and the "." / ".." names.
_PATH_SEGMENT_KINDS = frozenset(
    {
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
    }
)
# Kinds whose names must be DNS-1123 labels (≤ 63) rather than subdomains (≤ 253).
_LABEL_NAME_KINDS = frozenset({("", "namespaces"), ("", "services")})


def validate_name(rtype: ResourceType, name: str) -> list[dict[str, str]]:
    """metadata.name rules as ValidateObjectMeta applies them per kind."""
    key = (rtype.group, rtype.plural)
    if key in _PATH_SEGMENT_KINDS:
        if name in (".", "..") or "/" in name or "%" in name:
            return [errors.invalid_value("metadata.name", name, 'may not contain "/" or "%"')]
        return []
    # IsDNS1123Label / IsDNS1123Subdomain: the length error and the format error are reported independently.
    out: list[dict[str, str]] = []
    if key in _LABEL_NAME_KINDS:
        if len(name) > 63:
            out.append(errors.invalid_value("metadata.name", name, "must be no more than 63 characters"))
        if not DNS1123_LABEL.match(name):
            # A valid subdomain that is no valid label (length already checked) can only be one with dots.
            detail = (
                "must not contain dots"
                if DNS1123_SUBDOMAIN.match(name)
                else "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )
            out.append(errors.invalid_value("metadata.name", name, detail))
        return out
    if len(name) > 253:
        out.append(errors.invalid_value("metadata.name", name, "must be no more than 253 characters"))
    if not DNS1123_SUBDOMAIN.match(name):
        out.append(
            errors.invalid_value(
                "metadata.name",
                name,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        )
    return out


_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@functools.lru_cache(maxsize=4096)
def _qualified_name_errors(key: str) -> str | None:
    """Why `key` is not a qualified name (label and annotation keys), or None. Cached: a pure function of a string,
    and every write of an object checks the same few keys again."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character, and must be no more than 63 characters"
        )
    return None


def validate_metadata(meta: JSON) -> list[dict[str, str]]:
    """Labels and annotations rules from ValidateObjectMeta."""
    causes: list[dict[str, str]] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [errors.invalid_value("metadata.labels", labels, "must be a map of string to string")]
    for key, value in labels.items():
        problem = _qualified_name_errors(str(key))
        if problem:
            causes.append(errors.invalid_value("metadata.labels", key, problem))
        if not isinstance(value, str):
            causes.append(errors.invalid_value(f"metadata.labels.{key}", value, "must be a string"))
        elif len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                errors.invalid_value(
                    "metadata.labels",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character, and must be no more than 63 characters",
                )
            )
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        return [*causes, errors.invalid_value("metadata.annotations", annotations, "must be a map")]
    total = 0
    for key, value in annotations.items():
        problem = _qualified_name_errors(str(key))
        if problem:
            causes.append(errors.invalid_value("metadata.annotations", key, problem))
        if not isinstance(value, str):
            causes.append(errors.invalid_value(f"metadata.annotations.{key}", value, "must be a string"))
            continue
        total += len(key) + len(value)
    if total > 256 * 1024:
        causes.append(
            errors.cause(
                "metadata.annotations",
                "metadata.annotations: Too long: may not be more than 262144 bytes",
                "FieldValueTooLong",
            )
        )
    return causes


# --------------------------------------------------------------------------------------------
# Per-kind defaulting and validation.

Hook = Callable[[JSON, JSON | None], list[dict[str, str]]]


def _default_container(container: JSON) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = str(container.get("image", ""))
    if "imagePullPolicy" not in container:
        tag = image.rsplit("/", 1)[-1]
        untagged = ":" not in tag and "@" not in image
        container["imagePullPolicy"] = "Always" if untagged or tag.endswith(":latest") else "IfNotPresent"
    container.setdefault("resources", {})


def default_pod_spec(spec: JSON, restart_policy: str = "Always") -> None:
    spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
    spec.setdefault("serviceAccount", spec["serviceAccountName"])  # idempotent: a re-default changes nothing
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _default_container(container)


def validate_pod_spec(spec: Any, path: str, allowed_restart: tuple[str, ...]) -> list[dict[str, str]]:
    if not isinstance(spec, dict):
        return [errors.required(path)]
    causes: list[dict[str, str]] = []
    containers = spec.get("containers")
    if not containers:
        causes.append(errors.required(f"{path}.containers"))
    else:
        seen: set[str] = set()
        for index, container in enumerate(containers):
            cpath = f"{path}.containers[{index}]"
            if not isinstance(container, dict):
                causes.append(errors.invalid_value(cpath, container, "must be an object"))
                continue
            name = container.get("name")
            if not name:
                causes.append(errors.required(f"{cpath}.name"))
            elif not isinstance(name, str) or not DNS1123_LABEL.match(name) or len(name) > 63:
                causes.append(
                    errors.invalid_value(
                        f"{cpath}.name",
                        name,
                        "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                        "characters or '-', and must start and end with an alphanumeric character",
                    )
                )
            elif name in seen:
                causes.append(
                    errors.cause(f"{cpath}.name", f'{cpath}.name: Duplicate value: "{name}"', "FieldValueDuplicate")
                )
            else:
                seen.add(name)
            if not container.get("image"):
                causes.append(errors.required(f"{cpath}.image"))
            for key in ("command", "args"):
                value = container.get(key)
                if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                    causes.append(errors.invalid_value(f"{cpath}.{key}", value, "must be a list of strings"))
    policy = spec.get("restartPolicy")
    if policy not in allowed_restart:
        causes.append(errors.unsupported_value(f"{path}.restartPolicy", policy, allowed_restart))
    return causes


def _pod(obj: JSON, old: JSON | None) -> list[dict[str, str]]:
    spec = obj.setdefault("spec", {})
    if old is None and isinstance(spec, dict):
        default_pod_spec(spec)
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", "BestEffort")
    return validate_pod_spec(spec, "spec", ("Always", "OnFailure", "Never"))


def _job_template_label_causes(template: JSON) -> list[dict[str, str]]:
    """Label values on the pod template (the generated `job-name` carries the Job's name: ≤ 63 characters)."""
    labels = (template.get("metadata") or {}).get("labels") or {}
    causes: list[dict[str, str]] = []
    if not isinstance(labels, dict):
        return causes
    for value in labels.values():
        if not isinstance(value, str):
            continue
        if len(value) > 63:
            causes.append(errors.invalid_value("spec.template.labels", value, "must be no more than 63 characters"))
        if not _LABEL_VALUE.match(value):
            causes.append(
                errors.invalid_value(
                    "spec.template.labels",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character",
                )
            )
    return causes


def _job(obj: JSON, old: JSON | None) -> list[dict[str, str]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [errors.required("spec")]
    template = spec.get("template")
    if not isinstance(template, dict):
        return [errors.required("spec.template")]
    if old is None:
        uid = obj["metadata"]["uid"]
        name = obj["metadata"].get("name", "")
        obj.pop("status", None)  # PrepareForCreate: a new Job starts with an empty status
        if spec.get("parallelism") is None and spec.get("completions") is None:
            spec["completions"] = 1
        if spec.get("parallelism") is None:
            spec["parallelism"] = 1
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        policy = spec.get("podFailurePolicy")
        spec.setdefault("podReplacementPolicy", "Failed" if policy else "TerminatingOrFailed")
        rules = policy.get("rules") if isinstance(policy, dict) else None
        for rule in rules if isinstance(rules, list) else []:
            patterns = rule.get("onPodConditions") if isinstance(rule, dict) else None
            for pattern in patterns if isinstance(patterns, list) else []:
                if isinstance(pattern, dict):
                    pattern.setdefault("status", "True")
        if spec.get("manualSelector") is None:
            spec.pop("manualSelector", None)
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            tmeta = template.setdefault("metadata", {})
            labels = tmeta.setdefault("labels", {})
            labels.update(
                {
                    "batch.kubernetes.io/controller-uid": uid,
                    "batch.kubernetes.io/job-name": name,
                    "controller-uid": uid,
                    "job-name": name,
                }
            )
        tspec = template.setdefault("spec", {})
        if isinstance(tspec, dict):
            default_pod_spec(tspec)
        # SetDefaults_Job: a Job without labels takes its pod template's (read back after the selector is generated).
        template_labels = (template.get("metadata") or {}).get("labels")
        if isinstance(template_labels, dict) and template_labels and not obj["metadata"].get("labels"):
            obj["metadata"]["labels"] = dict(template_labels)
    causes = _job_template_label_causes(template)
    causes.extend(validate_pod_spec(template.get("spec"), "spec.template.spec", ("Always", "OnFailure", "Never")))
    restart = (template.get("spec") or {}).get("restartPolicy") if isinstance(template.get("spec"), dict) else None
    if restart not in ("OnFailure", "Never"):
        causes.append(
            errors.cause(
                "spec.template.spec.restartPolicy",
                'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"',
                "FieldValueRequired",
            )
        )
    elif restart == "OnFailure" and spec.get("podFailurePolicy"):
        causes.append(
            errors.invalid_value(
                "spec.template.spec.restartPolicy",
                restart,
                'only "Never" is supported when podFailurePolicy is specified',
            )
        )
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            causes.append(errors.invalid_value(f"spec.{key}", value, "must be greater than or equal to 0"))
    if spec.get("activeDeadlineSeconds") == 0:
        causes.append(errors.invalid_value("spec.activeDeadlineSeconds", 0, "must be greater than 0"))
    if old is not None:
        old_spec = old.get("spec") or {}
        for key in (
            "selector",
            "template",
            "completions",
            "completionMode",
            "podFailurePolicy",
            "backoffLimitPerIndex",
        ):
            if key == "template" and spec.get("suspend") and old_spec.get("suspend"):
                continue
            if spec.get(key) != old_spec.get(key) and key != "completions":
                causes.append(
                    errors.invalid_value(
                        f"spec.{key}", spec.get(key) if key != "template" else "object", "field is immutable"
                    )
                )
    return causes


def _namespace(obj: JSON, old: JSON | None) -> list[dict[str, str]]:
    if old is None:
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    return []


def _secret(obj: JSON, old: JSON | None) -> list[dict[str, str]]:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    causes: list[dict[str, str]] = []
    for key, value in (obj.get("data") or {}).items():
        if not isinstance(value, str):
            causes.append(errors.invalid_value(f"data[{key}]", value, "must be a base64-encoded string"))
            continue
        try:
            base64.b64decode(value, validate=True)
        except ValueError:
            causes.append(errors.invalid_value(f"data[{key}]", "<secret contents redacted>", "illegal base64 data"))
    if old is not None and old.get("immutable") and obj.get("data") != old.get("data"):
        causes.append(errors.forbidden_field("data", "field is immutable when `immutable` is set"))
    if old is not None and obj.get("type") != old.get("type"):
        causes.append(errors.invalid_value("type", obj.get("type"), "field is immutable"))
    if not causes and sum(len(_b64_bytes(v)) for v in (obj.get("data") or {}).values()) > MAX_SECRET_SIZE:
        causes.append(_too_long("data", MAX_SECRET_SIZE))
    return causes


MAX_SECRET_SIZE = 1024 * 1024  # core.MaxSecretSize: the data limit of Secrets and ConfigMaps


def _b64_bytes(value: Any) -> bytes:
    try:
        return base64.b64decode(value) if isinstance(value, str) else b""
    except ValueError:
        return b""


def _too_long(field: str, limit: int) -> dict[str, str]:
    return errors.cause(field, f"{field}: Too long: may not be more than {limit} bytes", "FieldValueTooLong")


def _configmap(obj: JSON, old: JSON | None) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []
    for key, value in (obj.get("data") or {}).items():
        if not isinstance(value, str):
            causes.append(errors.invalid_value(f"data[{key}]", value, "must be a string"))
    if old is not None and old.get("immutable") and obj.get("data") != old.get("data"):
        causes.append(errors.forbidden_field("data", "field is immutable when `immutable` is set"))
    size = sum(len(v.encode()) for v in (obj.get("data") or {}).values() if isinstance(v, str))
    size += sum(len(_b64_bytes(v)) for v in (obj.get("binaryData") or {}).values())
    if size > MAX_SECRET_SIZE:
        causes.append(_too_long("[]", MAX_SECRET_SIZE))  # the whole object: upstream's empty field path
    return causes


def _deployment(obj: JSON, old: JSON | None) -> list[dict[str, str]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [errors.required("spec")]
    if old is None or "replicas" not in spec:
        spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    )
    causes: list[dict[str, str]] = []
    if not isinstance(spec.get("selector"), dict):
        causes.append(errors.required("spec.selector"))
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*causes, errors.required("spec.template")]
    tspec = template.setdefault("spec", {})
    if isinstance(tspec, dict):
        default_pod_spec(tspec)
    causes.extend(validate_pod_spec(tspec, "spec.template.spec", ("Always",)))
    return causes


def _event(obj: JSON, old: JSON | None) -> list[dict[str, str]]:
    if obj.get("apiVersion") == "v1" and not obj.get("involvedObject"):
        return [errors.required("involvedObject")]
    return []


def _node(obj: JSON, old: JSON | None) -> list[dict[str, str]]:
    return []


KIND_HOOKS: dict[tuple[str, str], Hook] = {
    ("", "pods"): _pod,
    ("batch", "jobs"): _job,
    ("", "namespaces"): _namespace,
    ("", "secrets"): _secret,
    ("", "configmaps"): _configmap,
    ("apps", "deployments"): _deployment,
    ("", "events"): _event,
    ("", "nodes"): _node,
}


def admit(rtype: ResourceType, obj: JSON, old: JSON | None) -> list[dict[str, str]]:
    """Default `obj` in place and return validation causes (empty when valid)."""
    hook = KIND_HOOKS.get((rtype.group, rtype.plural))
    return hook(obj, old) if hook else []
