"""Operator settings: one frozen dataclass built from `DOPS_*` environment variables (pure).

`OperatorSettings.from_env(environ)` is the only way settings are read: no module reads
`os.environ` at import time, and the caller passes the mapping (`os.environ` in production, a dict in
tests). Every bad value raises `ConfigurationError` with a message naming the full variable, e.g.
`DOPS_DEFAULT_MAX_CONCURRENT must be an integer ≥ 1, got "x"`. The contract (names, defaults,
meaning) is shared with the Helm chart and `dops dev`; each field's comment gives its unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from .leader import timing_problem

PREFIX = "DOPS_"
DEFAULT_WORKER_IMAGE = "ghcr.io/dops-dev/dops:0.1.0"
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLACEHOLDERS = frozenset({"namespace", "pod", "job", "operation", "container", "attempt"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
T = TypeVar("T")


class ConfigurationError(ValueError):
    """A `DOPS_*` setting has a value the operator cannot use (the message names the variable)."""


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the dops operator can be configured with (see /tmp/settings.md, the shared contract)."""

    # Namespaces the operator serves; () = cluster-wide. DOPS_WATCH_NAMESPACES, comma-separated.
    watch_namespaces: tuple[str, ...] = ()
    # Image of the built-in default DelegationTarget's worker container. DOPS_WORKER_IMAGE.
    worker_image: str = DEFAULT_WORKER_IMAGE
    # serviceAccountName of worker pods unless the target's podTemplate sets one. DOPS_WORKER_SERVICE_ACCOUNT.
    worker_service_account: str = "dops-worker"
    # maxConcurrent (operations) of the built-in default target. DOPS_DEFAULT_MAX_CONCURRENT.
    default_max_concurrent: int = 10
    # Cap on scheduled+running operations over all targets; 0 = unlimited. DOPS_GLOBAL_MAX_CONCURRENT.
    global_max_concurrent: int = 100
    # Job activeDeadlineSeconds (seconds) when neither the operation nor its target sets one; 0 = none.
    default_timeout_seconds: int = 0
    # Job backoffLimit (pod retries) when neither the operation nor its target sets one. DOPS_DEFAULT_RETRIES.
    default_retries: int = 0
    # status.runLink template; placeholders {namespace} {pod} {job} {operation} {container} {attempt};
    # "" = the pod's log through the API server. DOPS_RUN_LINK_TEMPLATE.
    run_link_template: str = ""
    # Server URL of default run links; "" = the client configuration's host. DOPS_API_SERVER_URL.
    api_server_url: str = ""
    # Where pod logs are archived: a directory (PVC) or an fsspec URL (s3://...). DOPS_LOG_ARCHIVE.
    log_archive: str = "/var/lib/dops/logs"
    # Seconds after finishing that finished, unpinned operations are deleted; 0 = keep. DOPS_TTL_SECONDS_AFTER_FINISHED.
    ttl_seconds_after_finished: int = 0
    # ttlSecondsAfterFinished (seconds) of a finished operation's Job, set after log archiving. DOPS_JOB_TTL_SECONDS.
    job_ttl_seconds: int = 600
    # Seconds a worker pod may fail to pull its image before the operation fails. DOPS_IMAGE_PULL_GRACE_SECONDS.
    image_pull_grace_seconds: int = 120
    # Seconds from admission for the worker to start (claim its operation) when its DelegationTarget sets no
    # startDeadlineSeconds: a Job that gets no pod, or a pod that never runs, fails the operation after this.
    # 0 = no deadline. DOPS_DEFAULT_START_DEADLINE_SECONDS.
    default_start_deadline_seconds: int = 600
    # Seconds a running worker pod may stay lost (terminating past its deletion time, phase Unknown, or not
    # ready because its node is) before the operation fails PodLost. DOPS_LOST_POD_GRACE_SECONDS.
    lost_pod_grace_seconds: int = 120
    # Seconds a worker may take to exit after it recorded its outcome (timed on the operator's clock from when it
    # saw that state) before its still-running Job is stopped; the outcome keeps its reason either way.
    # DOPS_WORKER_EXIT_GRACE_SECONDS.
    worker_exit_grace_seconds: int = 30
    # Default of DelegationTarget.spec.allowImportPaths (`py:module:function` URIs). DOPS_ALLOW_IMPORT_PATHS.
    allow_import_paths: bool = False
    # Seconds between safety-net reconciles of each non-terminal operation. DOPS_RECONCILE_INTERVAL_SECONDS.
    reconcile_interval_seconds: int = 60
    # Seconds between full re-lists of operations, Jobs and pods checked against the operator's cache (what a
    # missed DELETED event left behind is dropped, what a missed ADDED event hid is added); 0 = off.
    # DOPS_RESYNC_INTERVAL_SECONDS.
    resync_interval_seconds: int = 300
    # Seconds an operation may stay `scheduled` or `running` (on the operator's clock) before its Job and pods are
    # re-read from the API server (then again every twice that): what a watch gap hid cannot keep it stuck until
    # the resync. DOPS_VERIFY_AFTER_SECONDS.
    verify_after_seconds: int = 30
    # Port of the Prometheus /metrics endpoint; 0 = off. DOPS_METRICS_PORT.
    metrics_port: int = 8080
    # Port of the liveness/readiness endpoint /healthz; 0 = off. DOPS_HEALTH_PORT.
    health_port: int = 8081
    # Seconds without a watch event or bookmark after which liveness fails. DOPS_WATCH_STALE_SECONDS.
    watch_stale_seconds: int = 300
    # Address the metrics and health endpoints bind to (dops addition to the contract). DOPS_BIND_ADDRESS.
    bind_address: str = "0.0.0.0"
    # The `dops.io/run-state` label mirror of status.runState (a write per state change): `auto` writes it only
    # where the API server cannot select `status.runState` by field (no CRD selectableFields; asked once at
    # start), `always`, or `never`. DOPS_RUN_STATE_LABEL.
    run_state_label: str = "auto"
    # Lease-based leader election: only the Lease's holder reconciles and admits; other replicas stand by.
    # Off by default for a single process (`dops operator` by hand, `dops dev`); the chart turns it on.
    # DOPS_LEADER_ELECTION.
    leader_election: bool = False
    # Namespace of the Lease; "" = $POD_NAMESPACE, else the client configuration's namespace.
    # DOPS_LEADER_ELECTION_NAMESPACE.
    leader_election_namespace: str = ""
    # Name of the coordination.k8s.io/v1 Lease. DOPS_LEADER_ELECTION_LEASE_NAME.
    leader_election_lease_name: str = "dops-operator"
    # Identity written into the Lease; "" = $POD_NAME, else host name plus a random suffix.
    # DOPS_LEADER_ELECTION_IDENTITY.
    leader_election_identity: str = ""
    # Seconds a standby waits after the Lease last changed before taking it over. DOPS_LEASE_DURATION_SECONDS.
    lease_duration_seconds: int = 15
    # Seconds a leader keeps leading without a successful renew; must be < the lease duration.
    # DOPS_LEASE_RENEW_DEADLINE_SECONDS.
    lease_renew_deadline_seconds: int = 10
    # Seconds between attempts to acquire or renew the Lease. DOPS_LEASE_RETRY_PERIOD_SECONDS.
    lease_retry_period_seconds: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OperatorSettings:
        """Settings from the `DOPS_*` variables of `environ`; unset or empty variables take the defaults."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            raw = (environ.get(name) or "").strip()
            if not raw:  # unset and empty mean the default ("" is also the default of the string settings)
                continue
            values[f.name] = _PARSERS[f.name](name, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Cross-field checks (each raises ConfigurationError naming the variable)."""
        _check_template("DOPS_RUN_LINK_TEMPLATE", self.run_link_template)
        problem = timing_problem(
            self.lease_duration_seconds, self.lease_renew_deadline_seconds, self.lease_retry_period_seconds
        )
        if problem is not None:
            raise ConfigurationError(
                "DOPS_LEASE_DURATION_SECONDS, DOPS_LEASE_RENEW_DEADLINE_SECONDS and DOPS_LEASE_RETRY_PERIOD_SECONDS "
                f"do not fit together: {problem}"
            )

    @property
    def cluster_wide(self) -> bool:
        return not self.watch_namespaces


# ------------------------------------------------------------------------------------------- parsers


def _integer(minimum: int, what: str = "") -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < minimum:
            extra = f" ({what})" if what else ""
            raise ConfigurationError(f'{name} must be an integer ≥ {minimum}{extra}, got "{raw}"')
        return value

    return parse


def _port(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise ConfigurationError(f'{name} must be a port number between 0 (off) and 65535, got "{raw}"')
    return value


def _boolean(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f'{name} must be true or false, got "{raw}"')


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        if raw.lower() not in allowed:
            raise ConfigurationError(f'{name} must be one of {", ".join(allowed)}, got "{raw}"')
        return raw.lower()

    return parse


def _text(required: bool) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        if required and not raw:
            raise ConfigurationError(f"{name} must not be empty")
        return raw

    return parse


def _namespaces(name: str, raw: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in raw.split(","):
        item = part.strip()
        if not item:
            continue
        if len(item) > 63 or not _NAMESPACE.match(item):
            raise ConfigurationError(
                f'{name} must be a comma-separated list of namespace names, got "{raw}" '
                f'("{item}" is not a namespace name)'
            )
        if item not in out:
            out.append(item)
    return tuple(out)


def _namespace(name: str, raw: str) -> str:
    if len(raw) > 63 or not _NAMESPACE.match(raw):
        raise ConfigurationError(f'{name} must be a namespace name, got "{raw}"')
    return raw


_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _object_name(name: str, raw: str) -> str:
    if len(raw) > 253 or not _OBJECT_NAME.match(raw):
        raise ConfigurationError(
            f'{name} must be a Kubernetes object name (lower-case letters, digits, "-" and "."), got "{raw}"'
        )
    return raw


def _url(name: str, raw: str) -> str:
    if raw and not re.match(r"^https?://[^\s/]+", raw):
        raise ConfigurationError(f'{name} must be an http(s) URL such as https://kube.example.com:6443, got "{raw}"')
    return raw.rstrip("/")


def _archive(name: str, raw: str) -> str:
    if not raw:
        raise ConfigurationError(f"{name} must be a directory or an fsspec URL such as s3://bucket/dops-logs")
    return raw


def _check_template(name: str, template: str) -> None:
    if not template:
        return
    try:
        used = {field for _, field, _, _ in _formatter_parse(template) if field is not None}
    except ValueError as exc:
        raise ConfigurationError(f'{name} is not a valid template ({exc}), got "{template}"') from exc
    unknown = sorted(f for f in used if f not in _PLACEHOLDERS)
    if unknown:
        allowed = ", ".join("{" + p + "}" for p in sorted(_PLACEHOLDERS))
        raise ConfigurationError(f'{name} uses unknown placeholders {unknown} (allowed: {allowed}), got "{template}"')


def _formatter_parse(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    import string

    return list(string.Formatter().parse(template))


def _template(name: str, raw: str) -> str:
    _check_template(name, raw)
    return raw


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "watch_namespaces": _namespaces,
    "worker_image": _text(required=True),
    "worker_service_account": _text(required=False),
    "default_max_concurrent": _integer(1),
    "global_max_concurrent": _integer(0, "0 = unlimited"),
    "default_timeout_seconds": _integer(0, "0 = no limit"),
    "default_retries": _integer(0),
    "run_link_template": _template,
    "api_server_url": _url,
    "log_archive": _archive,
    "ttl_seconds_after_finished": _integer(0, "0 = keep"),
    "job_ttl_seconds": _integer(0),
    "image_pull_grace_seconds": _integer(0),
    "default_start_deadline_seconds": _integer(0, "0 = no deadline"),
    "lost_pod_grace_seconds": _integer(0),
    "worker_exit_grace_seconds": _integer(0),
    "allow_import_paths": _boolean,
    "reconcile_interval_seconds": _integer(1),
    "resync_interval_seconds": _integer(0, "0 = off"),
    "verify_after_seconds": _integer(1),
    "metrics_port": _port,
    "health_port": _port,
    "watch_stale_seconds": _integer(1),
    "bind_address": _text(required=True),
    "run_state_label": _choice("auto", "always", "never"),
    "leader_election": _boolean,
    "leader_election_namespace": _namespace,
    "leader_election_lease_name": _object_name,
    "leader_election_identity": _text(required=False),
    "lease_duration_seconds": _integer(1),
    "lease_renew_deadline_seconds": _integer(1),
    "lease_retry_period_seconds": _integer(1),
}


def placeholders() -> frozenset[str]:
    """Placeholders a run-link template may use."""
    return _PLACEHOLDERS
