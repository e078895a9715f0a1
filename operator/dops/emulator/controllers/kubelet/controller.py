"""The kubelet of the embedded control plane: one node, pods as local processes (or simulated).

Level-triggered like every controller here: `reconcile` reads the pod as stored and moves its
containers one step towards what the spec asks; process exits, back-offs and deadlines come back
as queue entries. The kubelet also does the scheduler's one job on a one-node cluster (binding
pending pods to its node) and serves the pods/log endpoint (`api.log_provider`).

Pod lifecycle, as a real kubelet reports it:
- binding: `spec.nodeName` + `PodScheduled` (the scheduler's write);
- `Pending` with every container `waiting: ContainerCreating` (`PodInitializing` with init containers);
- `Running` (`running.startedAt`, `ready`, `started`, podIP);
- `Succeeded`/`Failed` with `terminated{exitCode, reason Completed|Error|StartError, message, ...}`;
  restartPolicy OnFailure/Always restart containers with `restartCount`, `lastState` and
  `CrashLoopBackOff` back-off (10 s doubling to 5 min, configurable);
- deletion: the API server keeps a pod that runs here (graceful deletion, `api.graceful_delete`),
  the kubelet sends SIGTERM to each container's process group, SIGKILL after the grace period,
  reports the final status and deletes the pod with grace 0 (finalizers may hold it after that);
- `activeDeadlineSeconds`: containers are killed, the pod fails with reason `DeadlineExceeded`.

Those rules are lifecycle.py's `PodLifecycle`, shared with the node agent (dops.emulator.node); what
is this kubelet's own is how it meets the embedded API server: pods read from the store by name,
status and the final DELETE written in-process, env references resolved against the store, a
KUBECONFIG for process containers, Events created directly, and the scheduler's binding.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from ... import errors
from ...apiserver import ApiServer, DeleteOptions, WriteOptions
from ...clock import rfc3339
from ...registry import ResourceType
from ...server import kubeconfig_yaml
from ...store import Event
from ..base import Controller, Key
from .config import IN_CLUSTER_ENV, KubeletOptions
from .env import Sources
from .lifecycle import PodLifecycle
from .logs import container_log_id, empty_log, parse_log_options, select_container, stream_log
from .node import node_labels, node_object
from .runtime import TERMINAL, ContainerRuntime, PodRuntime, compose_pod_status

JSON = dict[str, Any]
PODS = ("", "pods")
NODES = ("", "nodes")

log = logging.getLogger("dops.emulator.kubelet")


class Kubelet(Controller, PodLifecycle[PodRuntime]):
    """A single-node kubelet (and scheduler) running pods as local processes or simulations."""

    name = "kubelet"
    watches = (PODS, NODES)
    strip_env = IN_CLUSTER_ENV  # processes reach the API server through their KUBECONFIG, not in-cluster config

    def __init__(self, api: ApiServer, **options: Any) -> None:
        Controller.__init__(self, api)
        self.options = KubeletOptions(**options)
        PodLifecycle.__init__(self, self.options, self.options.node_name)
        self._pod_type: ResourceType = api.type_for("", "v1", "pods")
        self._node_type: ResourceType = api.type_for("", "v1", "nodes")
        self._event_type: ResourceType = api.type_for("", "v1", "events")
        self._by_name: dict[tuple[str, str], set[str]] = {}  # (namespace, name) → uids (an old pod may linger)
        self._kubeconfigs: dict[str, Path] = {}
        self._previous_hooks: tuple[Any, Any] = (None, None)

    # ------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self.options.work_dir:
            # Absolute: pod processes run in directories of their own, and get paths below it (KUBECONFIG).
            self.work_dir = Path(os.path.abspath(self.options.work_dir))
            self.work_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.work_dir = Path(tempfile.mkdtemp(prefix="dops-kubelet-"))
        self._previous_hooks = (self.api.graceful_delete, self.api.log_provider)
        self.api.graceful_delete = self._graceful_delete
        self.api.log_provider = self.serve_logs
        self._register_node()
        super().start()

    async def stop(self) -> None:
        if self.api.graceful_delete == self._graceful_delete:
            self.api.graceful_delete = self._previous_hooks[0]
        if self.api.log_provider == self.serve_logs:
            self.api.log_provider = self._previous_hooks[1]
        await super().stop()
        await self._kill_everything(self.options.shutdown_grace)
        for runtime in list(self._pods.values()):
            self._forget(runtime, remove_files=False)
        if self.work_dir is not None and not self.options.work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def keys_for(self, event: Event) -> Iterable[Key]:
        meta = event.obj["metadata"]
        if event.resource == NODES:
            return [("", "nodes", "", meta["name"])] if meta["name"] == self.node_name else []
        node = (event.obj.get("spec") or {}).get("nodeName")
        if node and node != self.node_name:
            return []
        return [("", "pods", meta.get("namespace", ""), meta["name"])]

    def resync(self) -> None:
        self.queue.add(("", "nodes", "", self.node_name))
        for obj in self.api.store.iter(PODS):
            node = (obj.get("spec") or {}).get("nodeName")
            if not node or node == self.node_name:
                meta = obj["metadata"]
                self.queue.add(("", "pods", meta.get("namespace", ""), meta["name"]))

    async def reconcile(self, key: Key) -> float | None:
        _, plural, namespace, name = key
        if plural == "nodes":
            if name == self.node_name and self.api.store.get(NODES, "", name) is None:
                self._register_node()
            return None
        return await self._sync_pod(namespace, name)

    # ------------------------------------------------------------------------------- node
    def _register_node(self) -> None:
        body = node_object(self.node_name, self.options.node_ip, "10.244.0.0/24", self.api.clock.now())
        existing = self.api.store.get(NODES, "", self.node_name)
        opts = WriteOptions(field_manager="kubelet")
        status = body["status"]
        try:
            if existing is None:  # create (the apiserver drops status on create), then post the status
                existing = self.api.create(self._node_type, None, body, opts).obj
            updated = {**existing, "metadata": dict(existing["metadata"]), "status": status}
            updated["metadata"].pop("resourceVersion", None)
            self.api.update(self._node_type, None, self.node_name, updated, opts, subresource="status")
        except errors.APIError as exc:
            log.warning("kubelet: cannot register node %s: %s", self.node_name, exc.message)

    def _graceful_delete(self, rtype: ResourceType, obj: JSON) -> bool:
        """Pods running on this node are deleted gracefully (CheckGracefulDelete)."""
        if (rtype.group, rtype.plural) != PODS:
            return False
        if (obj.get("spec") or {}).get("nodeName") != self.node_name:
            return False
        return (obj.get("status") or {}).get("phase") not in TERMINAL

    # ------------------------------------------------------------------------------- scheduling
    def _schedule(self, pod: JSON) -> None:
        spec = pod.get("spec") or {}
        meta = pod["metadata"]
        if (spec.get("schedulerName") or "default-scheduler") != "default-scheduler" or meta.get("deletionTimestamp"):
            return
        node = self.api.store.get(NODES, "", self.node_name)
        labels = ((node or {}).get("metadata") or {}).get("labels") or node_labels(self.node_name)
        selector = spec.get("nodeSelector") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            self._unschedulable(pod)
            return
        try:
            self.api.bind_pod(meta.get("namespace", ""), meta["name"], self.node_name, meta["uid"])
        except errors.APIError as exc:
            log.debug("kubelet: binding %s/%s failed: %s", meta.get("namespace"), meta["name"], exc.message)
            return
        if not self._pod_is_simulated(pod):
            self._event(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta.get('namespace')}/{meta['name']} to {self.node_name}",
                component="default-scheduler",
            )

    def _collect_unscheduled(self, pod: JSON) -> None:
        """What kube-controller-manager's pod GC does with a pod deleted before it was scheduled (no kubelet will
        ever stop it): phase Failed, then a delete with grace 0. A finalizer (the Job controller's tracking one)
        then holds it until its owner has counted it; without this a Job whose podReplacementPolicy waits for
        Failed pods waited for ever. The real pod GC looks every 20 s; this happens at once."""
        meta = pod["metadata"]
        status = dict(pod.get("status") or {})
        if status.get("phase") not in TERMINAL:
            status["phase"] = "Failed"
            self._put_status(pod, status, manager="pod-garbage-collector")
        if meta.get("deletionGracePeriodSeconds"):
            with contextlib.suppress(errors.APIError):
                self.api.delete(
                    self._pod_type,
                    meta.get("namespace", ""),
                    meta["name"],
                    DeleteOptions(grace_period_seconds=0, precondition_uid=meta["uid"]),
                )

    def _unschedulable(self, pod: JSON) -> None:
        status = dict(pod.get("status") or {})
        message = (
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        )
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("message") == message:
                return
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(self.api.clock.now()),
                "reason": "Unschedulable",
                "message": message,
            }
        )
        status["conditions"] = conditions
        status.setdefault("phase", "Pending")
        self._put_status(pod, status, manager="default-scheduler")

    # ------------------------------------------------------------------------------- pod sync
    async def _sync_pod(self, namespace: str, name: str) -> float | None:
        pod = self.api.store.get(PODS, namespace, name)
        uid = pod["metadata"]["uid"] if pod is not None else None
        waits: list[float] = []
        for other in list(self._by_name.get((namespace, name), ())):
            if other != uid:
                wait = self._teardown(self._pods[other])
                if wait is not None:
                    waits.append(wait)
        if pod is None:
            return min(waits, default=None)
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        if not node:
            if pod["metadata"].get("deletionTimestamp"):
                self._collect_unscheduled(pod)
            elif self.options.schedule:
                self._schedule(pod)
            return min(waits, default=None)
        if node != self.node_name:
            return min(waits, default=None)
        runtime = self._pods.get(str(uid))
        if runtime is None:
            meta = pod["metadata"]
            if (pod.get("status") or {}).get("phase") in TERMINAL:
                return min(waits, default=None)
            runtime = PodRuntime(pod, self.images, self.api.clock.now())
            if meta.get("deletionTimestamp"):
                runtime.announced = True  # deleted before it ever started: nothing to run
            self._pods[runtime.uid] = runtime
            self._by_name.setdefault((namespace, name), set()).add(runtime.uid)
        wait = await self._sync(pod, runtime)
        if wait is not None:
            waits.append(wait)
        return min(waits, default=None)

    # ------------------------------------------------------------------------------- PodLifecycle hooks
    def _now(self) -> datetime:
        return self.api.clock.now()

    async def _write_status(self, rt: PodRuntime) -> bool:
        current = self.api.store.get(PODS, rt.namespace, rt.name)
        if current is None or current["metadata"]["uid"] != rt.uid:
            return True
        status = compose_pod_status(current, rt, self.options.node_ip, rfc3339(self._now()))
        if status["phase"] in TERMINAL:
            rt.terminal = True
        if status != current.get("status"):
            self._put_status(current, status)
        return True  # an in-process write that fails would fail again: it is logged, not retried

    async def _final_delete(self, pod: JSON, rt: PodRuntime) -> bool:
        """The kubelet's last word on a deleted pod: DELETE with grace 0 (and its uid as precondition)."""
        current = self.api.store.get(PODS, rt.namespace, rt.name)
        if current is None or current["metadata"]["uid"] != rt.uid:
            return True
        if not current["metadata"].get("deletionGracePeriodSeconds"):
            return True
        with contextlib.suppress(errors.APIError):
            self.api.delete(
                self._pod_type, rt.namespace, rt.name, DeleteOptions(grace_period_seconds=0, precondition_uid=rt.uid)
            )
        return True

    async def _env_sources(self, pod: JSON, container: JSON) -> Sources:
        return self.api.store  # env references are read as stored when the container starts

    def _node_env(self, pod: JSON, rt: PodRuntime, container: ContainerRuntime) -> dict[str, str]:
        return {"KUBECONFIG": str(self._kubeconfig(rt.namespace))} if self.options.server_url else {}

    def _emit_event(self, body: JSON) -> None:
        namespace = body["metadata"]["namespace"]
        with contextlib.suppress(errors.APIError):
            self.api.create(self._event_type, namespace, body, WriteOptions(field_manager=body["source"]["component"]))

    def _requeue(self, rt: PodRuntime) -> None:
        self.queue.add(rt.key)

    def _forget(self, rt: PodRuntime, remove_files: bool = True) -> None:
        super()._forget(rt, remove_files)
        uids = self._by_name.get((rt.namespace, rt.name))
        if uids is not None:
            uids.discard(rt.uid)
            if not uids:
                del self._by_name[(rt.namespace, rt.name)]

    # ------------------------------------------------------------------------------- status
    def _put_status(self, pod: JSON, status: JSON, manager: str = "kubelet") -> None:
        meta = dict(pod["metadata"])
        meta.pop("resourceVersion", None)
        body = {**pod, "metadata": meta, "status": status}
        try:
            self.api.update(
                self._pod_type,
                meta.get("namespace"),
                meta["name"],
                body,
                WriteOptions(field_manager=manager),
                subresource="status",
            )
        except errors.APIError as exc:
            log.debug("kubelet: status of %s/%s not written: %s", meta.get("namespace"), meta["name"], exc.message)

    # ------------------------------------------------------------------------------- helpers
    def _kubeconfig(self, namespace: str) -> Path:
        path = self._kubeconfigs.get(namespace)
        if path is None:
            assert self.work_dir is not None
            directory = self.work_dir / "kubeconfig"
            directory.mkdir(exist_ok=True)
            path = directory / f"{namespace}.yaml"
            path.write_text(kubeconfig_yaml(self.options.server_url, namespace))
            self._kubeconfigs[namespace] = path
        return path

    # ------------------------------------------------------------------------------- logs (S13)
    async def serve_logs(self, request: web.Request, pod: JSON, query: dict[str, str]) -> web.StreamResponse:
        """GET pods/{name}/log: the apiserver's checks, then the kubelet's, then the log file."""
        name = pod["metadata"]["name"]
        opts = parse_log_options(name, query, datetime.now(UTC))
        container = select_container(pod, opts.container)
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return empty_log()
        if node != self.node_name:
            # The node lookup's NotFound, named after the pods resource the request was for (as upstream answers).
            raise errors.APIError(404, "NotFound", f'pods "{node}" not found', {"name": node, "kind": "pods"})
        container_id = container_log_id(pod, container, opts.previous)
        runtime = self._pods.get(str(pod["metadata"]["uid"]))
        writer = runtime.find_log(container_id)[1] if runtime is not None else None
        return await stream_log(request, writer, opts)
