"""Deployment and ReplicaSet controllers, minimal but shaped like kube-controller-manager's.

A Deployment owns ReplicaSets named `<deployment>-<pod-template-hash>`; a ReplicaSet owns pods
named `<replicaset>-xxxxx`; both with controller ownerReferences (so the garbage collector
cascades deletions). Rollouts use **Recreate** semantics whatever `spec.strategy` says: on a
template change the old ReplicaSets are scaled to 0, and the new one is created or scaled up
only once no old pod is running (docs/GAPS.md). Scaling `spec.replicas` scales the current
ReplicaSet in place.

Status follows the real controllers: ReplicaSet `replicas/fullyLabeledReplicas/readyReplicas/
availableReplicas/observedGeneration`; Deployment `observedGeneration/replicas/updatedReplicas/
readyReplicas/availableReplicas/unavailableReplicas` and the `Available`
(MinimumReplicasAvailable) and `Progressing` (NewReplicaSetCreated → ReplicaSetUpdated →
NewReplicaSetAvailable) conditions that `kubectl rollout status`, helm's kstatus wait and
`kubectl wait --for=condition=available` read. `minReadySeconds` delays availability.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from typing import Any

from .. import errors
from ..apiserver import ApiServer, DeleteOptions
from ..clock import parse_time, rfc3339
from ..registry import ResourceType
from ..store import DELETED, Event
from .base import Controller, Key
from .common import (
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    EventRecorder,
    active_pod_sort_key,
    controller_ref,
    delete_owned_pod,
    find_condition,
    log,
    new_controller_ref,
    pod_active,
    pod_ready,
    write_options,
)

JSON = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
MAX_BURST = 500
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def template_hash(template: Any, collision_count: int = 0) -> str:
    """ComputeHash: fnv-32a of the template (plus the collision count), rand.SafeEncodeString'd."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in str(value))


def _without_hash(template: Any) -> Any:
    out = copy.deepcopy(template) if isinstance(template, dict) else {}
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return out


def _resolve_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value or "0")
    if text.endswith("%"):
        try:
            fraction = float(text[:-1]) * total / 100
        except ValueError:
            return 0
        return math.ceil(fraction) if round_up else math.floor(fraction)
    try:
        return int(text)
    except ValueError:
        return 0


def max_unavailable(deployment: JSON) -> int:
    """deploymentutil.MaxUnavailable (0 for Recreate or no replicas)."""
    spec = deployment.get("spec") or {}
    replicas = _int(spec.get("replicas"), 1)
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _resolve_percent(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = _resolve_percent(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return min(unavailable, replicas)


def max_surge(deployment: JSON) -> int:
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0
    rolling = strategy.get("rollingUpdate") or {}
    return _resolve_percent(rolling.get("maxSurge", "25%"), _int(spec.get("replicas"), 1), True)


class DeploymentController(Controller):
    name = "deployment"
    watches = (DEPLOYMENTS, REPLICASETS, PODS)

    def __init__(self, api: ApiServer, events: bool = True) -> None:
        super().__init__(api)
        self.deploy_events = EventRecorder(api, "deployment-controller", enabled=events)
        self.rs_events = EventRecorder(api, "replicaset-controller", enabled=events)
        self._children: dict[str, set[tuple[str, str]]] = {}  # owner uid → controlled RSs / pods
        self._rs_type: ResourceType = api.type_for("apps", "v1", "replicasets")
        self._deploy_type: ResourceType = api.type_for("apps", "v1", "deployments")
        self._pods_type: ResourceType = api.type_for("", "v1", "pods")

    # ------------------------------------------------------------------------------- events → keys
    def _index(self, old: JSON | None, new: JSON | None, kind: str) -> None:
        old_ref = controller_ref(old)
        new_ref = controller_ref(new)
        old_uid = old_ref["uid"] if old_ref and old_ref.get("kind") == kind else None
        new_uid = new_ref["uid"] if new_ref and new_ref.get("kind") == kind else None
        if old is not None and old_uid and old_uid != new_uid:
            children = self._children.get(old_uid)
            if children is not None:
                children.discard((old["metadata"].get("namespace", ""), old["metadata"]["name"]))
                if not children:
                    del self._children[old_uid]
        if new is not None and new_uid:
            self._children.setdefault(new_uid, set()).add(
                (new["metadata"].get("namespace", ""), new["metadata"]["name"])
            )

    def keys_for(self, event: Event) -> Iterable[Key]:
        obj = event.obj
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        if event.resource == DEPLOYMENTS:
            return [("apps", "deployments", namespace, meta["name"])]
        kind = "Deployment" if event.resource == REPLICASETS else "ReplicaSet"
        if event.type == DELETED:
            self._index(event.old or obj, None, kind)
        else:
            self._index(event.old, obj, kind)
        keys: list[Key] = []
        if event.resource == REPLICASETS:
            keys.append(("apps", "replicasets", namespace, meta["name"]))
        for candidate in (obj, event.old):
            ref = controller_ref(candidate)
            if ref is not None and ref.get("kind") == kind:
                plural = "deployments" if kind == "Deployment" else "replicasets"
                key: Key = ("apps", plural, namespace, str(ref.get("name", "")))
                if key not in keys:
                    keys.append(key)
                if kind == "ReplicaSet":
                    # A pod change can unblock its Deployment's rollout (Recreate waits for old pods).
                    rs = self.api.store.get(REPLICASETS, namespace, str(ref.get("name", "")))
                    owner = controller_ref(rs)
                    if owner is not None and owner.get("kind") == "Deployment":
                        deploy_key: Key = ("apps", "deployments", namespace, str(owner.get("name", "")))
                        if deploy_key not in keys:
                            keys.append(deploy_key)
        return keys

    def resync(self) -> None:
        self._children.clear()
        for rs in self.api.store.iter(REPLICASETS):
            self._index(None, rs, "Deployment")
        for pod in self.api.store.iter(PODS):
            self._index(None, pod, "ReplicaSet")
        super().resync()

    def _owned(self, owner: JSON, resource: tuple[str, str]) -> list[JSON]:
        uid = owner["metadata"]["uid"]
        out = []
        for namespace, name in list(self._children.get(uid, ())):
            obj = self.api.store.get(resource, namespace, name)
            if obj is not None and (controller_ref(obj) or {}).get("uid") == uid:
                out.append(obj)
        out.sort(key=lambda o: (str(o["metadata"].get("creationTimestamp", "")), o["metadata"]["name"]))
        return out

    async def reconcile(self, key: Key) -> float | None:
        _group, plural, namespace, name = key
        if plural == "replicasets":
            rs = self.api.store.get(REPLICASETS, namespace, name)
            return self._sync_replicaset(rs) if rs is not None else None
        if plural == "deployments":
            deployment = self.api.store.get(DEPLOYMENTS, namespace, name)
            return self._sync_deployment(deployment) if deployment is not None else None
        return None

    # ------------------------------------------------------------------------------- ReplicaSets
    def _sync_replicaset(self, rs: JSON) -> float | None:
        spec = rs.get("spec") or {}
        replicas = _int(spec.get("replicas"), 1)
        pods = self._owned(rs, PODS)
        active = [p for p in pods if pod_active(p)]
        if not rs["metadata"].get("deletionTimestamp"):
            diff = len(active) - replicas
            if diff < 0:
                for _ in range(min(-diff, MAX_BURST)):
                    if not self._create_pod(rs):
                        break
            elif diff > 0:
                for pod in sorted(active, key=active_pod_sort_key)[:diff]:
                    self._delete_pod(rs, pod)
            pods = self._owned(rs, PODS)
            active = [p for p in pods if pod_active(p)]
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = _int(spec.get("minReadySeconds"))
        available, wait = self._available(active, min_ready)
        status: JSON = {"replicas": len(active)}
        labeled = sum(
            1
            for p in active
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items())
        )
        ready = sum(1 for p in active if pod_ready(p))
        for field_name, value in (
            ("fullyLabeledReplicas", labeled),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ):
            if value:
                status[field_name] = value
        if rs["metadata"].get("generation"):
            status["observedGeneration"] = rs["metadata"]["generation"]
        old_status = rs.get("status") or {}
        if old_status.get("conditions"):
            status["conditions"] = old_status["conditions"]
        if status != old_status:
            body = dict(rs)
            body["metadata"] = dict(rs["metadata"])
            body["status"] = status
            meta = rs["metadata"]
            try:
                self.api.update(
                    self._rs_type, meta["namespace"], meta["name"], body, write_options(), subresource="status"
                )
            except errors.APIError as exc:
                if exc.code != 404:
                    log.warning("replicaset: status update of %s failed: %s", meta["name"], exc.message)
        return wait

    def _available(self, pods: list[JSON], min_ready: int) -> tuple[int, float | None]:
        """Ready pods that have been ready for minReadySeconds, and when to look again."""
        now = self.api.clock.now().timestamp()
        count = 0
        wait: float | None = None
        for pod in pods:
            if not pod_ready(pod):
                continue
            if min_ready <= 0:
                count += 1
                continue
            cond = find_condition((pod.get("status") or {}).get("conditions"), "Ready") or {}
            since = parse_time(str(cond.get("lastTransitionTime"))) if cond.get("lastTransitionTime") else None
            left = (since.timestamp() + min_ready - now) if since is not None else 0.0
            if left <= 0:
                count += 1
            else:
                wait = left if wait is None else min(wait, left)
        return count, wait

    def _create_pod(self, rs: JSON) -> bool:
        spec = rs.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.get("metadata") or {}
        meta: JSON = {"generateName": f"{rs['metadata']['name']}-", "namespace": rs["metadata"]["namespace"]}
        for key in ("labels", "annotations"):
            if tmeta.get(key):
                meta[key] = dict(tmeta[key])
        if tmeta.get("finalizers"):
            meta["finalizers"] = list(tmeta["finalizers"])
        meta["ownerReferences"] = [new_controller_ref(rs)]
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec") or {}}
        try:
            created = self.api.create(self._pods_type, rs["metadata"]["namespace"], body, write_options()).obj
        except errors.APIError as exc:
            if exc.code != 403:
                self.rs_events.event(rs, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            return False
        self.rs_events.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return True

    def _delete_pod(self, rs: JSON, pod: JSON) -> None:
        delete_owned_pod(self.api, self._pods_type, self.rs_events, rs, pod)

    def _sync_deployment(self, deployment: JSON) -> float | None:
        meta = deployment["metadata"]
        spec = deployment.get("spec") or {}
        all_rs = self._owned(deployment, REPLICASETS)
        if meta.get("deletionTimestamp"):
            self._sync_status(deployment, all_rs, self._find_new(deployment, all_rs))
            return None
        selector = spec.get("selector")
        if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            self.deploy_events.event(
                deployment,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            return None
        new_rs = self._find_new(deployment, all_rs)
        old_rs = [rs for rs in all_rs if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        if spec.get("paused"):
            self._sync_status(deployment, all_rs, new_rs)
            return None
        replicas = _int(spec.get("replicas"), 1)
        # Recreate: scale every old ReplicaSet down to zero first …
        scaled_down = False
        for rs in old_rs:
            if _int((rs.get("spec") or {}).get("replicas"), 1) > 0:
                self._scale(deployment, rs, 0)
                scaled_down = True
        if scaled_down:
            return self._sync_status(deployment, self._owned(deployment, REPLICASETS), new_rs)
        # … wait until none of their pods is running …
        for rs in old_rs:
            for pod in self._owned(rs, PODS):
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    return self._sync_status(deployment, all_rs, new_rs)
        # … then create or scale up the new one.
        if new_rs is None:
            new_rs = self._create_replicaset(deployment, old_rs, replicas)
            if new_rs is None:
                return 1.0
        else:
            self._sync_revision(deployment, new_rs, old_rs)
            current = self.api.store.get(REPLICASETS, new_rs["metadata"]["namespace"], new_rs["metadata"]["name"])
            new_rs = current or new_rs
            if _int((new_rs.get("spec") or {}).get("replicas"), 1) != replicas:
                new_rs = self._scale(deployment, new_rs, replicas)
        deployment = self.api.store.get(DEPLOYMENTS, meta["namespace"], meta["name"]) or deployment
        all_rs = self._owned(deployment, REPLICASETS)
        again = self._sync_status(deployment, all_rs, new_rs)
        self._cleanup(deployment, [rs for rs in all_rs if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]])
        return again

    def _find_new(self, deployment: JSON, all_rs: list[JSON]) -> JSON | None:
        """FindNewReplicaSet: the oldest ReplicaSet whose template equals the Deployment's (hash label aside)."""
        wanted = _without_hash((deployment.get("spec") or {}).get("template"))
        for rs in all_rs:
            if _without_hash((rs.get("spec") or {}).get("template")) == wanted:
                return rs
        return None

    def _revision(self, obj: JSON) -> int:
        try:
            return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
        except ValueError:
            return 0

    def _create_replicaset(self, deployment: JSON, old_rs: list[JSON], replicas: int) -> JSON | None:
        spec = deployment.get("spec") or {}
        meta = deployment["metadata"]
        collisions = _int((deployment.get("status") or {}).get("collisionCount"))
        template = copy.deepcopy(spec.get("template") or {})
        hash_value = template_hash(template, collisions)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: hash_value}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: hash_value}
        revision = max([self._revision(rs) for rs in old_rs] + [0]) + 1
        rs_meta: JSON = {
            "name": f"{meta['name']}-{hash_value}",
            "namespace": meta["namespace"],
            "labels": dict(tmeta["labels"]),
            "annotations": {
                DESIRED: str(replicas),
                MAX_REPLICAS: str(replicas + max_surge(deployment)),
                REVISION: str(revision),
            },
            "ownerReferences": [new_controller_ref(deployment)],
        }
        rs_spec: JSON = {"replicas": replicas, "selector": selector, "template": template}
        if spec.get("minReadySeconds"):
            rs_spec["minReadySeconds"] = spec["minReadySeconds"]
        body = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": rs_meta, "spec": rs_spec}
        try:
            created = self.api.create(self._rs_type, meta["namespace"], body, write_options()).obj
        except errors.APIError as exc:
            if exc.code == 409:
                # A ReplicaSet of that name with another template: bump collisionCount and retry next sync.
                self._write_status(deployment, {**(deployment.get("status") or {}), "collisionCount": collisions + 1})
            elif exc.code != 403:
                log.warning("deployment: creating a ReplicaSet for %s failed: %s", meta["name"], exc.message)
            return None
        self._set_deployment_revision(deployment, revision)
        self.deploy_events.event(
            deployment,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}",
        )
        current = self.api.store.get(DEPLOYMENTS, meta["namespace"], meta["name"]) or deployment
        status = copy.deepcopy(current.get("status") or {})
        self._set_condition(
            status,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            f'Created new replica set "{created["metadata"]["name"]}"',
        )
        self._write_status(current, status)
        return created

    def _sync_revision(self, deployment: JSON, new_rs: JSON, old_rs: list[JSON]) -> None:
        """Keep the new ReplicaSet's revision the highest (a rollback re-uses an old ReplicaSet)."""
        highest = max([self._revision(rs) for rs in old_rs] + [0])
        revision = self._revision(new_rs)
        if revision <= highest:
            revision = highest + 1
            annotations = {**(new_rs["metadata"].get("annotations") or {}), REVISION: str(revision)}
            self._patch_annotations(self._rs_type, new_rs, annotations)
        if self._revision(deployment) != revision:
            self._set_deployment_revision(deployment, revision)

    def _set_deployment_revision(self, deployment: JSON, revision: int) -> None:
        current = self.api.store.get(DEPLOYMENTS, deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        if current is None:
            return
        annotations = {**(current["metadata"].get("annotations") or {}), REVISION: str(revision)}
        self._patch_annotations(self._deploy_type, current, annotations)

    def _patch_annotations(self, rtype: ResourceType, obj: JSON, annotations: JSON) -> None:
        if (obj["metadata"].get("annotations") or {}) == annotations:
            return
        body = dict(obj)
        body["metadata"] = {**obj["metadata"], "annotations": annotations}
        meta = obj["metadata"]
        try:
            self.api.update(rtype, meta["namespace"], meta["name"], body, write_options())
        except errors.APIError as exc:
            if exc.code not in (404, 409):
                log.warning("deployment: annotating %s failed: %s", meta["name"], exc.message)

    def _scale(self, deployment: JSON, rs: JSON, replicas: int) -> JSON:
        old = _int((rs.get("spec") or {}).get("replicas"), 1)
        body = dict(rs)
        body["metadata"] = {
            **rs["metadata"],
            "annotations": {
                **(rs["metadata"].get("annotations") or {}),
                DESIRED: str(_int((deployment.get("spec") or {}).get("replicas"), 1)),
                MAX_REPLICAS: str(_int((deployment.get("spec") or {}).get("replicas"), 1) + max_surge(deployment)),
            },
        }
        body["spec"] = {**(rs.get("spec") or {}), "replicas": replicas}
        meta = rs["metadata"]
        try:
            updated = self.api.update(self._rs_type, meta["namespace"], meta["name"], body, write_options()).obj
        except errors.APIError as exc:
            log.warning("deployment: scaling %s failed: %s", meta["name"], exc.message)
            return rs
        direction = "up" if replicas > old else "down"
        self.deploy_events.event(
            deployment,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {meta['name']} from {old} to {replicas}",
        )
        return updated

    def _cleanup(self, deployment: JSON, old_rs: list[JSON]) -> None:
        """Keep at most revisionHistoryLimit old ReplicaSets that have scaled to zero."""
        limit = _int((deployment.get("spec") or {}).get("revisionHistoryLimit"), 10)
        idle = [
            rs
            for rs in old_rs
            if _int((rs.get("spec") or {}).get("replicas"), 1) == 0
            and not _int((rs.get("status") or {}).get("replicas"))
            and not rs["metadata"].get("deletionTimestamp")
        ]
        idle.sort(key=self._revision)
        for rs in idle[: max(0, len(idle) - limit)]:
            meta = rs["metadata"]
            try:
                self.api.delete(
                    self._rs_type, meta["namespace"], meta["name"], DeleteOptions(precondition_uid=meta["uid"])
                )
            except errors.APIError as exc:
                if exc.code not in (404, 409):
                    log.warning("deployment: cleaning up %s failed: %s", meta["name"], exc.message)

    # ------------------------------------------------------------------------------- status
    def _set_condition(
        self, status: JSON, ctype: str, value: str, reason: str, message: str, force: bool = False
    ) -> None:
        """SetDeploymentCondition: unchanged status+reason is a no-op; otherwise the condition moves last."""
        conditions: list[JSON] = list(status.get("conditions") or [])
        current = find_condition(conditions, ctype)
        if current is not None and current.get("status") == value and current.get("reason") == reason and not force:
            return
        now = rfc3339(self.api.clock.now())
        transition = now
        if current is not None and current.get("status") == value:
            transition = str(current.get("lastTransitionTime") or now)
        conditions = [c for c in conditions if c.get("type") != ctype]
        conditions.append(
            {
                "type": ctype,
                "status": value,
                "lastUpdateTime": now,
                "lastTransitionTime": transition,
                "reason": reason,
                "message": message,
            }
        )
        status["conditions"] = conditions

    def _sync_status(self, deployment: JSON, all_rs: list[JSON], new_rs: JSON | None) -> float | None:
        """syncRolloutStatus: counters from the ReplicaSets, then Available and Progressing."""
        spec = deployment.get("spec") or {}
        replicas = _int(spec.get("replicas"), 1)
        old_status = deployment.get("status") or {}
        if new_rs is not None:
            new_rs = (
                self.api.store.get(REPLICASETS, new_rs["metadata"]["namespace"], new_rs["metadata"]["name"]) or new_rs
            )
        all_rs = [
            self.api.store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"]) or rs for rs in all_rs
        ]

        def total(field_name: str, sets: list[JSON]) -> int:
            return sum(_int((rs.get("status") or {}).get(field_name)) for rs in sets)

        available = total("availableReplicas", all_rs)
        desired_total = sum(_int((rs.get("spec") or {}).get("replicas"), 1) for rs in all_rs)
        status: JSON = {}
        if deployment["metadata"].get("generation"):
            status["observedGeneration"] = deployment["metadata"]["generation"]
        counters = {
            "replicas": total("replicas", all_rs),
            "updatedReplicas": total("replicas", [new_rs]) if new_rs is not None else 0,
            "readyReplicas": total("readyReplicas", all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired_total - available),
        }
        for key, value in counters.items():
            if value:
                status[key] = value
        if old_status.get("conditions"):
            status["conditions"] = copy.deepcopy(old_status["conditions"])
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        if available >= replicas - max_unavailable(deployment):
            self._set_condition(
                status, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
            )
        else:
            self._set_condition(
                status,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        progressing = find_condition(status.get("conditions"), "Progressing")
        complete_before = (
            progressing is not None
            and progressing.get("reason") == "NewReplicaSetAvailable"
            and counters["replicas"] == counters["updatedReplicas"]
        )
        if new_rs is not None and not complete_before:
            name = new_rs["metadata"]["name"]
            generation = _int(deployment["metadata"].get("generation"))
            complete = (
                counters["updatedReplicas"] == replicas
                and counters["replicas"] == replicas
                and available == replicas
                and _int(status.get("observedGeneration")) >= generation
            )
            if complete:
                self._set_condition(
                    status,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}" has successfully progressed.',
                )
            elif self._progressed(old_status, counters):
                self._set_condition(
                    status,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{name}" is progressing.',
                    force=True,
                )
        if status != old_status:
            self._write_status(deployment, status)
        return None

    @staticmethod
    def _progressed(old: JSON, new: dict[str, int]) -> bool:
        return (
            new["updatedReplicas"] > _int(old.get("updatedReplicas"))
            or new["readyReplicas"] > _int(old.get("readyReplicas"))
            or new["availableReplicas"] > _int(old.get("availableReplicas"))
            or new["replicas"] < _int(old.get("replicas"))
        )

    def _write_status(self, deployment: JSON, status: JSON) -> None:
        body = dict(deployment)
        body["metadata"] = dict(deployment["metadata"])
        body["status"] = status
        meta = deployment["metadata"]
        try:
            self.api.update(
                self._deploy_type, meta["namespace"], meta["name"], body, write_options(), subresource="status"
            )
        except errors.APIError as exc:
            if exc.code != 404:
                log.warning("deployment: status update of %s failed: %s", meta["name"], exc.message)
