"""DelegationPolicy: a cluster administrator's limits on DelegationTargets, as the operator enforces them (pure).

Why twice: the API server rejects a violating DelegationTarget at `kubectl apply` (the chart's
ValidatingAdmissionPolicy with paramKind DelegationPolicy), but a target created before the policy, or while the
policy's binding was missing, still exists. The operator creates Jobs with its own permissions, so it judges the
target again right before it would: an operation on a violating target fails with reason `PolicyViolation` and
never runs. Both judge the same fields the same way (docs/security.md), with one deliberate difference: the
operator judges the *effective* `allowImportPaths` (a target that leaves it out inherits the chart's default),
where the API server can only see what the target sets.

Semantics: every policy whose `namespaces` include the namespace (or that lists none) applies, and each must be
met; a field left out allows anything, an empty list allows nothing. The operator's built-in default target is
the administrator's own configuration and is never judged; its ServiceAccount and image are always allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .settings import OperatorSettings
from .targets import Target

JSON = dict[str, Any]


@dataclass(frozen=True)
class DelegationPolicy:
    """One DelegationPolicy resource; None fields were left out (allow anything)."""

    name: str
    namespaces: tuple[str, ...] = ()
    allowed_image_prefixes: tuple[str, ...] | None = None
    allowed_service_accounts: tuple[str, ...] | None = None
    allow_secret_env: bool = True
    allowed_node_placement_keys: tuple[str, ...] | None = None
    allow_import_paths: bool = True
    max_concurrent: int | None = None
    weight: int = 1

    def applies_to(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces


def _strings(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(str(v) for v in value if isinstance(v, str))


def policy_from_resource(obj: Mapping[str, Any]) -> DelegationPolicy:
    """A DelegationPolicy from its resource (the CRD's schema has checked the types)."""
    spec = obj.get("spec") or {}
    ceiling = spec.get("maxConcurrent")
    weight = spec.get("weight")
    return DelegationPolicy(
        name=str((obj.get("metadata") or {}).get("name") or ""),
        namespaces=_strings(spec.get("namespaces")) or (),
        allowed_image_prefixes=_strings(spec.get("allowedImagePrefixes")),
        allowed_service_accounts=_strings(spec.get("allowedServiceAccounts")),
        allow_secret_env=spec.get("allowSecretEnv") is not False,
        allowed_node_placement_keys=_strings(spec.get("allowedNodePlacementKeys")),
        allow_import_paths=spec.get("allowImportPaths") is not False,
        max_concurrent=ceiling if isinstance(ceiling, int) and not isinstance(ceiling, bool) and ceiling > 0 else None,
        weight=weight if isinstance(weight, int) and not isinstance(weight, bool) and weight > 0 else 1,
    )


def applicable(namespace: str, policies: Iterable[DelegationPolicy]) -> list[DelegationPolicy]:
    return [p for p in policies if p.applies_to(namespace)]


def _secret_env_names(pod_template: Mapping[str, Any]) -> list[str]:
    found = []
    for item in pod_template.get("env") or []:
        source = item.get("valueFrom") if isinstance(item, Mapping) else None
        if isinstance(source, Mapping) and source.get("secretKeyRef") is not None:
            found.append(str(item.get("name")))
    return found


def _placement_keys(pod_template: Mapping[str, Any]) -> list[str]:
    keys = [str(k) for k in (pod_template.get("nodeSelector") or {})]
    keys += [
        str(t.get("key")) for t in pod_template.get("tolerations") or [] if isinstance(t, Mapping) and t.get("key")
    ]
    return keys


def violations(target: Target, policies: Sequence[DelegationPolicy], settings: OperatorSettings) -> list[str]:
    """Why `target` breaks the policies that apply to its namespace, one readable line each; [] when it does not."""
    if target.builtin:
        return []
    found: list[str] = []
    where = f"DelegationTarget {target.namespace}/{target.name}"
    template = target.pod_template
    for policy in applicable(target.namespace, policies):
        rule = f"DelegationPolicy {policy.name}"
        prefixes = policy.allowed_image_prefixes
        operators_image = target.image == settings.worker_image  # what a target without an image runs
        if prefixes is not None and not operators_image and not any(target.image.startswith(p) for p in prefixes):
            allowed = ", ".join(prefixes) or "none"
            found.append(f"{where}: image {target.image} is not allowed by {rule} (allowed prefixes: {allowed})")
        accounts = policy.allowed_service_accounts
        account = template.get("serviceAccountName")
        if accounts is not None and account and account not in accounts:
            allowed = ", ".join(accounts) or "none"
            found.append(f"{where}: serviceAccountName {account} is not allowed by {rule} (allowed: {allowed})")
        secret_env = _secret_env_names(template)
        if not policy.allow_secret_env and secret_env:
            names = ", ".join(secret_env)
            found.append(f"{where}: env from Secrets ({names}) is not allowed by {rule}")
        keys = policy.allowed_node_placement_keys
        if keys is not None:
            outside = sorted({k for k in _placement_keys(template) if k not in keys})
            if outside:
                allowed = ", ".join(keys) or "none"
                found.append(
                    f"{where}: node placement keys {', '.join(outside)} are not allowed by {rule} (allowed: {allowed})"
                )
        if not policy.allow_import_paths and target.allow_import_paths:
            found.append(f"{where}: allowImportPaths (py: operator URIs) is not allowed by {rule}")
        if policy.max_concurrent is not None and target.max_concurrent > policy.max_concurrent:
            found.append(
                f"{where}: maxConcurrent {target.max_concurrent} is above {rule}'s ceiling of {policy.max_concurrent}"
            )
    return found


def namespace_ceiling(namespace: str, policies: Iterable[DelegationPolicy]) -> int | None:
    """The most operations of `namespace` that may run at once (the lowest ceiling of its policies); None: no cap."""
    ceilings = [p.max_concurrent for p in applicable(namespace, policies) if p.max_concurrent is not None]
    return min(ceilings) if ceilings else None


def namespace_weight(namespace: str, policies: Iterable[DelegationPolicy]) -> int:
    """How many admissions `namespace` gets per turn under the global cap: the highest weight of its policies, 1."""
    return max((p.weight for p in applicable(namespace, policies)), default=1)
