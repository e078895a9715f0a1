"""Delegation targets: what an operation's `spec.delegationTarget` resolves to (pure).

An empty target name means the namespace's default target, as does the name `default`: a
DelegationTarget named `default` in the operation's namespace when there is one, else the operator's
built-in default (image, concurrency, timeout and retries from `OperatorSettings`). A named target
that does not exist resolves to None: the operation waits, queued, with an `UnknownTarget` condition
until the target appears.

Fields a DelegationTarget leaves unset take the operator's defaults, so the Job builder never has
to look at settings and targets separately.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import constants as c
from .progress import DEFAULT_PROGRESS_INTERVAL_SECONDS
from .settings import OperatorSettings

JSON = dict[str, Any]
DEFAULT_TARGET_NAME = "default"  # the DelegationTarget an empty spec.delegationTarget means, when it exists
CRD_DEFAULT_MAX_CONCURRENT = 10
DEFAULT_MAX_DISRUPTION_RETRIES = 3  # a disrupted worker pod is replaced this many times (at-least-once)


@dataclass(frozen=True)
class Target:
    """A resolved delegation target (a DelegationTarget with defaults filled in, or the built-in one)."""

    namespace: str
    name: str  # "default" for the namespace's default target (built-in or a DelegationTarget named so)
    mode: str = c.MODE_JOB
    image: str = ""
    image_pull_policy: str | None = None
    max_concurrent: int = CRD_DEFAULT_MAX_CONCURRENT
    timeout_seconds: int | None = None  # None: no limit
    retries: int = 0
    start_deadline_seconds: int | None = None  # admission → worker started; None: no deadline
    max_disruption_retries: int = DEFAULT_MAX_DISRUPTION_RETRIES
    ttl_seconds_after_finished: int | None = None  # default retention of its finished operations
    progress_interval_seconds: int = DEFAULT_PROGRESS_INTERVAL_SECONDS  # its workers' progress coalescing
    allow_import_paths: bool = False
    run_link_template: str | None = None
    pod_template: JSON = field(default_factory=dict)
    generation: int | None = None
    builtin: bool = False  # the operator's built-in default (no DelegationTarget resource)

    @property
    def external(self) -> bool:
        return self.mode == c.MODE_EXTERNAL

    @property
    def display_name(self) -> str:
        return f"{self.name} (built-in)" if self.builtin else self.name


def builtin_target(namespace: str, settings: OperatorSettings) -> Target:
    return Target(
        namespace=namespace,
        name=DEFAULT_TARGET_NAME,
        builtin=True,
        image=settings.worker_image,
        max_concurrent=settings.default_max_concurrent,
        timeout_seconds=settings.default_timeout_seconds or None,
        retries=settings.default_retries,
        start_deadline_seconds=settings.default_start_deadline_seconds or None,
        ttl_seconds_after_finished=None,
        allow_import_paths=settings.allow_import_paths,
        run_link_template=settings.run_link_template or None,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def target_from_resource(obj: Mapping[str, Any], settings: OperatorSettings) -> Target:
    """A Target from a DelegationTarget resource; unset fields take the operator's defaults."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    timeout = _int(spec.get("timeoutSeconds"))
    retries = _int(spec.get("retries"))
    max_concurrent = _int(spec.get("maxConcurrent"))
    allow = spec.get("allowImportPaths")
    start_deadline = _int(spec.get("startDeadlineSeconds"))
    if start_deadline is None:
        start_deadline = settings.default_start_deadline_seconds
    disruption_retries = _int(spec.get("maxDisruptionRetries"))
    progress_interval = _int(spec.get("progressIntervalSeconds"))
    return Target(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        mode=str(spec.get("mode") or c.MODE_JOB),
        image=str(spec.get("image") or settings.worker_image),
        image_pull_policy=spec.get("imagePullPolicy") or None,
        max_concurrent=max_concurrent if max_concurrent and max_concurrent > 0 else CRD_DEFAULT_MAX_CONCURRENT,
        timeout_seconds=timeout if timeout else (settings.default_timeout_seconds or None),
        retries=retries if retries is not None else settings.default_retries,
        start_deadline_seconds=start_deadline if start_deadline > 0 else None,
        max_disruption_retries=disruption_retries
        if disruption_retries is not None and disruption_retries >= 0
        else DEFAULT_MAX_DISRUPTION_RETRIES,
        ttl_seconds_after_finished=_int(spec.get("ttlSecondsAfterFinished")),
        progress_interval_seconds=progress_interval
        if progress_interval is not None and progress_interval >= 0
        else DEFAULT_PROGRESS_INTERVAL_SECONDS,
        allow_import_paths=bool(allow) if isinstance(allow, bool) else settings.allow_import_paths,
        run_link_template=spec.get("runLinkTemplate") or None,
        pod_template=copy.deepcopy(dict(spec.get("podTemplate") or {})),
        generation=_int(meta.get("generation")),
    )


def target_key(namespace: str, name: str | None) -> tuple[str, str]:
    """The key of the target an operation names: (namespace, name), "" and "default" both being `default`."""
    return namespace, name or DEFAULT_TARGET_NAME


def resolve_target(
    namespace: str,
    name: str | None,
    targets: Mapping[tuple[str, str], Target],
    settings: OperatorSettings,
) -> Target | None:
    """The target an operation naming `name` runs on; None when a named target does not exist.

    `targets` maps (namespace, name) of existing DelegationTargets to their resolved form.
    """
    key = target_key(namespace, name)
    found = targets.get(key)
    if found is None and key[1] == DEFAULT_TARGET_NAME:
        return builtin_target(namespace, settings)
    return found
