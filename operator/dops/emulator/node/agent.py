"""The node agent: a kubelet for any API server, running pods as local process groups.

One `NodeAgent` plays one node. Everything it knows about the cluster comes over HTTP(S) from the
API server, with the identity of its kubeconfig (a `system:node:<name>` client certificate, as a
real kubelet's, makes the Node authorizer and NodeRestriction apply to it):

- **the node**: registers the Node (machine capacity, InternalIP + Hostname addresses, the kubelet
  API port in `status.daemonEndpoints`, `Ready`), renews its Lease in `kube-node-lease` every
  `renew_interval` (the node lifecycle controller's liveness signal) and re-posts its status every
  `status_interval`; on a graceful stop it fails its pods as a kubelet's graceful node shutdown does
  and marks itself NotReady. Killed with -9 it just stops renewing: the node lifecycle controller
  marks it NotReady after its grace period, and the watchdog (watchdog.py) kills its containers.
- **the pods**: list+watch of pods with `spec.nodeName=<name>` (resuming from the resourceVersion,
  relisting on 410 Gone), then the embedded kubelet's runtime for each (same image map, process
  groups, CRI logs, termination messages, restart back-off, environment: controllers/kubelet),
  status through `pods/status` (merge patch, uid precondition), graceful deletion (SIGTERM, SIGKILL
  after the grace period, then DELETE with grace 0), events.
- **what a pod gets from a kubelet**: `KUBERNETES_SERVICE_HOST/PORT` (the API server of the
  agent's kubeconfig), env from the downward API, ConfigMaps and Secrets (read over HTTP: the
  Node authorizer lets a node read exactly what its pods reference), and the projected
  ServiceAccount volume (volumes.py) at `$DOPS_SERVICE_ACCOUNT_DIR`.
- **the kubelet API** (kubeletapi.py): `kubectl logs` through the API server's proxy.

The pod state machine is the embedded kubelet's own (`PodLifecycle`, controllers/kubelet/lifecycle.py,
one implementation for both); this module supplies its hooks: status and the final DELETE over HTTP
(retried when the API server is unreachable), env references fetched over HTTP, the in-cluster
environment, Events sent in the background, volume mounts before the sandbox, token refresh, and
the watchdog's list of process groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp

from ..clock import rfc3339, rfc3339_micro
from ..controllers.base import Key, WorkQueue
from ..controllers.kubelet.config import ImageMap, KubeletOptions
from ..controllers.kubelet.env import ConfigError, referenced_sources
from ..controllers.kubelet.lifecycle import RETRY, PodLifecycle
from ..controllers.kubelet.logs import LogWriter
from ..controllers.kubelet.node import node_conditions, node_object
from ..controllers.kubelet.process import Exit, ProcessRunner
from ..controllers.kubelet.runtime import TERMINAL, ContainerRuntime, PodRuntime, compose_pod_status
from . import watchdog as watchdog_module
from .client import MERGE_PATCH, ApiClient, ApiError, Credentials
from .kubeletapi import KubeletApi, ServingConfig
from .volumes import MAX_TOKEN_AGE, SERVICE_ACCOUNT_DIR_ENV, SERVICE_ACCOUNT_MOUNT, PodVolumes, VolumeError

JSON = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
SHUTDOWN_REASON = "Terminated"  # what a kubelet's graceful node shutdown reports on the pods it stops
SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."
# Status fields the kubelet owns that it may stop reporting: a null in the merge patch drops them.
_OWNED = ("podIP", "podIPs", "initContainerStatuses", "reason", "message", "observedGeneration")

log = logging.getLogger("dops.emulator.node")


@dataclass
class AgentOptions:
    """Everything `NodeAgent` accepts (the command line in __main__.py maps onto it)."""

    node_name: str
    kubelet: KubeletOptions = field(default_factory=KubeletOptions)  # image map, work dir, back-offs, log sizes
    address: str = "127.0.0.1"  # where the kubelet API listens
    port: int = 0  # kubelet API port (0: any free one; the Node reports it)
    serving: ServingConfig | None = None  # no certificate: no kubelet API (kubectl logs cannot reach the node)
    lease_duration: int = 40
    renew_interval: float = 10.0
    status_interval: float = 60.0
    # How often the Node is compared with what the API server shows (a kubelet's nodeStatusUpdateFrequency):
    # a difference (the node lifecycle controller marked it Unknown while this agent could not report) is posted.
    status_update_interval: float = 10.0
    token_max_age: float = MAX_TOKEN_AGE
    shutdown_grace: float = 5.0  # graceful stop: SIGTERM to every container, SIGKILL after this long
    watchdog: bool = True
    temporary_dirs: tuple[Path, ...] = ()  # removed by the watchdog if the agent dies without cleaning up


class AgentPod(PodRuntime):
    """The embedded kubelet's per-pod state plus what the agent adds: projected volumes."""

    def __init__(self, pod: JSON, images: ImageMap, now: datetime, directory: Path, max_token_age: float) -> None:
        super().__init__(pod, images, now)
        self.directory = directory  # logs, volumes and the default working directory of its containers
        self.volumes = PodVolumes(pod, directory, max_token_age)
        self.mount_error = ""
        self.mount_failures = 0


def _resource_version(obj: JSON) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _condition_statuses(conditions: list[JSON]) -> dict[str, str]:
    """{type: status} of node conditions: what a kubelet compares before it posts."""
    return {str(c.get("type")): str(c.get("status")) for c in conditions}


def _normalised(value: Any) -> Any:
    """A status with nulls and empty strings dropped: what the API server stores of what we send."""
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


class Watchdog:
    """The pipe to watchdog.py: which container process groups to kill if this process dies."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", watchdog_module.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a killpg of the agent's group must not take it along
        )
        self._pipe: IO[bytes] | None = self._proc.stdin

    def _send(self, line: str) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError, ValueError):
                self._pipe.write(line.encode())
                self._pipe.flush()

    def add(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def remove(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def remove_on_death(self, directory: Path) -> None:
        self._send(f"!{directory}\n")

    def close(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.close()
            self._pipe = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5)


class NodeAgent(PodLifecycle[AgentPod]):
    """One node: `await NodeAgent(options).run()` until `stop()` (or SIGTERM in __main__)."""

    runtime_label = "dops node agent"
    pull_hint = 'map {image!r} with --image-map to "process" or "simulated"'

    def __init__(self, options: AgentOptions, credentials: Credentials, client: ApiClient) -> None:
        super().__init__(options.kubelet, options.node_name)
        self.options = options
        self.credentials = credentials
        self.client = client
        self.queue = WorkQueue()
        self.work_dir = Path(os.path.abspath(self.kopts.work_dir)) if self.kopts.work_dir else None
        self._owns_work_dir = self.work_dir is None
        self._cache: dict[str, JSON] = {}  # uid → the pod as last seen (bound to this node)
        self._events: asyncio.Queue[JSON] = asyncio.Queue(maxsize=1000)
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self.kubelet_api: KubeletApi | None = None
        self.kubelet_port = 0
        self._watchdog: Watchdog | None = None
        self._node_uid = ""
        self._conditions: list[JSON] = []
        self._lease: JSON | None = None

    # ------------------------------------------------------------------------------ lifecycle
    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Start, call `ready()`, serve until `stop()`, then shut down gracefully."""
        await self.start()
        if ready is not None:
            ready()
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix=f"dops-node-{self.node_name}-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.options.watchdog:
            self._watchdog = Watchdog()
            for directory in (*self.options.temporary_dirs, *([self.work_dir] if self._owns_work_dir else [])):
                self._watchdog.remove_on_death(directory)
        if self.options.serving is not None:
            self.kubelet_api = KubeletApi(self, self.client, self.options.serving)
            self.kubelet_port = await self.kubelet_api.start(self.options.address, self.options.port)
        await self._register_node()
        await self._renew_lease()
        loop = asyncio.get_running_loop()
        for name, coro in (
            ("lease", self._lease_loop()),
            ("node-status", self._status_loop()),
            ("pods", self._informer()),
            ("sync", self._sync_loop()),
            ("events", self._event_loop()),
        ):
            self._tasks.append(loop.create_task(coro, name=f"node-agent-{name}"))
        log.info("node agent %s: registered; kubelet API on port %s", self.node_name, self.kubelet_port or "(off)")

    async def shutdown(self) -> None:
        """Graceful node shutdown: stop the containers, fail their pods, mark the node NotReady, clean up."""
        started = time.monotonic()
        log.info("node agent %s: shutting down (%d pods)", self.node_name, len(self._pods))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self._kill_everything(self.options.shutdown_grace)
        for rt in list(self._pods.values()):
            if not rt.terminal and rt.uid in self._cache and rt.announced:
                rt.stopped = True
                rt.reason, rt.message = SHUTDOWN_REASON, SHUTDOWN_MESSAGE
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._write_status(rt), 5.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._post_node_status(ready=False), 5.0)
        for rt in list(self._pods.values()):
            self._forget(rt, remove_files=False)  # finishes every log: `kubectl logs -f` streams end
        if self.kubelet_api is not None:
            await self.kubelet_api.stop()
        if self._watchdog is not None:
            self._watchdog.close()
        if self.work_dir is not None and self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        log.info("node agent %s: shut down in %.1f s", self.node_name, time.monotonic() - started)

    # ------------------------------------------------------------------------------ the node
    def _node_status(self, ready: bool) -> JSON:
        now = rfc3339(datetime.now(UTC))
        body = node_object(self.node_name, self.kopts.node_ip, "", datetime.now(UTC))
        status: JSON = body["status"]
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": self.kubelet_port}}
        conditions = node_conditions(now)
        if not ready:
            conditions[-1].update(
                {"status": "False", "reason": "KubeletNotReady", "message": "node agent is shutting down"}
            )
        previous = {c.get("type"): c for c in self._conditions}
        for condition in conditions:
            old = previous.get(condition["type"])
            if old is not None and old.get("status") == condition["status"]:
                condition["lastTransitionTime"] = old.get("lastTransitionTime", now)
        status["conditions"] = conditions
        return status

    async def _register_node(self) -> None:
        """Create the Node (or adopt the existing one), then post its status: the kubelet's registration."""
        body = node_object(self.node_name, self.kopts.node_ip, "", datetime.now(UTC))
        body.pop("spec", None)  # podCIDR is the IPAM controller's to set, never the node's
        body["metadata"]["annotations"].pop("node.alpha.kubernetes.io/ttl", None)  # the TTL controller's
        body["status"] = self._node_status(ready=True)
        try:
            node = await self.client.request("POST", "/api/v1/nodes", body=body)
        except ApiError as exc:
            if exc.code != 409:
                raise
            node = await self.client.request(
                "PATCH",
                f"/api/v1/nodes/{self.node_name}",
                body={"metadata": {"labels": body["metadata"]["labels"]}},
                content_type=MERGE_PATCH,
            )
        self._node_uid = str(node["metadata"]["uid"])
        await self._post_node_status(ready=True)

    async def _post_node_status(self, ready: bool) -> None:
        status = self._node_status(ready)
        node = await self.client.request(
            "PATCH", f"/api/v1/nodes/{self.node_name}/status", body={"status": status}, content_type=MERGE_PATCH
        )
        self._conditions = list((node.get("status") or {}).get("conditions") or status["conditions"])

    async def _renew_lease(self) -> None:
        """Create or renew `kube-node-lease/<node>` (holder = the node, owned by the Node object)."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        now = rfc3339_micro(datetime.now(UTC))
        if self._lease is None:
            self._lease = await self.client.get_or_none(f"{path}/{self.node_name}")
        if self._lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.node_name,
                    "namespace": LEASE_NAMESPACE,
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": self._node_uid}
                    ],
                },
                "spec": {
                    "holderIdentity": self.node_name,
                    "leaseDurationSeconds": self.options.lease_duration,
                    "renewTime": now,
                },
            }
            self._lease = await self.client.request("POST", path, body=body)
            return
        lease = dict(self._lease)
        lease["spec"] = {
            **(lease.get("spec") or {}),
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": self.options.lease_duration,
            "renewTime": now,
        }
        try:
            self._lease = await self.client.request("PUT", f"{path}/{self.node_name}", body=lease)
        except ApiError as exc:
            self._lease = None  # conflict or gone: read (or create) it afresh next time
            if exc.code not in (404, 409):
                raise

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.renew_interval)
            try:
                await self._renew_lease()
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("node agent %s: lease not renewed: %s", self.node_name, exc)

    async def _status_loop(self) -> None:
        """Post the node's status at least every `status_interval`, and, like a kubelet, as soon as the API server
        shows another (checked every `status_update_interval`): a node that was frozen or cut off and marked
        `Ready=Unknown` by the node lifecycle controller is Ready again within that, not a minute later."""
        posted = time.monotonic()
        while True:
            await asyncio.sleep(min(self.options.status_update_interval, self.options.status_interval))
            try:
                if time.monotonic() - posted < self.options.status_interval:
                    node = await self.client.request("GET", f"/api/v1/nodes/{self.node_name}")
                    shown = list((node.get("status") or {}).get("conditions") or [])
                    if _condition_statuses(shown) == _condition_statuses(self._node_status(ready=True)["conditions"]):
                        continue
                    self._conditions = shown  # a transition is counted from what the API server shows
                await self._post_node_status(ready=True)
                posted = time.monotonic()
            except ApiError as exc:
                if exc.code == 404:  # someone deleted the Node: register again, as a kubelet does
                    with contextlib.suppress(ApiError, aiohttp.ClientError, OSError):
                        await self._register_node()
                        self._lease = None
                else:
                    log.warning("node agent %s: node status not posted: %s", self.node_name, exc)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("node agent %s: node status not posted: %s", self.node_name, exc)

    # ------------------------------------------------------------------------------ pod informer
    def _key(self, pod: JSON) -> Key:
        meta = pod["metadata"]
        return ("", "pods", str(meta.get("namespace", "")), str(meta["uid"]))

    def _observe(self, pod: JSON, enqueue: bool = True) -> None:
        uid = str(pod["metadata"]["uid"])
        known = self._cache.get(uid)
        if known is not None and _resource_version(known) > _resource_version(pod) > 0:
            return  # an older copy (a watch event behind our own write)
        self._cache[uid] = pod
        if enqueue:
            self.queue.add(self._key(pod))

    def _vanish(self, pod: JSON) -> None:
        self._cache.pop(str(pod["metadata"]["uid"]), None)
        self.queue.add(self._key(pod))

    async def _informer(self) -> None:
        """list+watch pods bound to this node; resume from the last resourceVersion, relist on 410 Gone."""
        selector = {"fieldSelector": f"spec.nodeName={self.node_name}"}
        version: str | None = None
        while True:
            try:
                if version is None:
                    listing = await self.client.get("/api/v1/pods", selector)
                    version = str(listing["metadata"]["resourceVersion"])
                    items = {str(p["metadata"]["uid"]): p for p in listing.get("items") or []}
                    for uid, pod in list(self._cache.items()):
                        if uid not in items:
                            self._vanish(pod)
                    for pod in items.values():
                        self._observe(pod)
                params = {
                    **selector,
                    "resourceVersion": version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": "300",
                }
                async for event in self.client.watch("/api/v1/pods", params):
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            version = None  # too old: relist
                        else:
                            log.warning("node agent %s: watch error: %s", self.node_name, obj.get("message"))
                            await asyncio.sleep(RETRY)
                        break
                    version = str(obj["metadata"]["resourceVersion"])
                    if kind == "DELETED":
                        self._vanish(obj)
                    elif kind in ("ADDED", "MODIFIED"):
                        self._observe(obj)
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.code == 410:
                    version = None
                else:
                    log.warning("node agent %s: pod list/watch failed: %s", self.node_name, exc)
                    await asyncio.sleep(RETRY)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError) as exc:
                log.warning("node agent %s: pod watch interrupted: %s", self.node_name, exc)
                await asyncio.sleep(RETRY)

    # ------------------------------------------------------------------------------ PodSource
    def pod_by_name(self, namespace: str, name: str) -> JSON | None:
        """The pod called `name` this node runs (the newest, if an old one with that name is still terminating)."""
        found = [
            p
            for p in self._cache.values()
            if p["metadata"]["name"] == name and p["metadata"].get("namespace") == namespace
        ]
        return max(found, key=lambda p: str(p["metadata"].get("creationTimestamp", "")), default=None)

    def pods(self) -> list[JSON]:
        return list(self._cache.values())

    def log_writer(self, uid: str, container_id: str) -> tuple[bool, LogWriter | None]:
        runtime = self._pods.get(uid)
        return runtime.find_log(container_id) if runtime is not None else (False, None)

    # ------------------------------------------------------------------------------ pod sync
    async def _sync_loop(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                again = await self._reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node agent %s: sync of pod %s/%s failed; retrying", self.node_name, key[2], key[3])
                again = RETRY
            if again is not None:
                self.queue.add_after(key, again)
            await asyncio.sleep(0)

    async def _reconcile(self, key: Key) -> float | None:
        uid = key[3]
        pod = self._cache.get(uid)
        rt = self._pods.get(uid)
        if pod is None:
            return self._teardown(rt) if rt is not None else None
        if rt is None:
            meta = pod["metadata"]
            if (pod.get("status") or {}).get("phase") in TERMINAL:
                if meta.get("deletionTimestamp"):
                    await self._delete_pod(pod)
                return None
            assert self.work_dir is not None
            directory = self.work_dir / "pods" / f"{meta.get('namespace', '')}_{meta['name']}_{uid}"
            rt = AgentPod(pod, self.images, self._now(), directory, self.options.token_max_age)
            if meta.get("deletionTimestamp"):
                rt.announced = True  # deleted before it ever started: nothing to run
            self._pods[uid] = rt
        return await self._sync(pod, rt)

    # ------------------------------------------------------------------------------ PodLifecycle hooks
    def _now(self) -> datetime:
        return datetime.now(UTC)

    def _requeue(self, rt: AgentPod) -> None:
        self.queue.add(("", "pods", rt.namespace, rt.uid))

    def _container_started(self, runner: ProcessRunner) -> None:
        """Tell the watchdog about the new process group (and when it is gone)."""
        if self._watchdog is not None:
            pgid = runner.pgid
            self._watchdog.add(pgid)
            runner.done.add_done_callback(functools.partial(self._release, pgid))

    async def _prepare_sandbox(self, pod: JSON, rt: AgentPod) -> float | None:
        """Set up the pod's projected volumes before its sandbox; a failure is FailedMount and a retry."""
        if rt.simulated or rt.volumes.ready:
            return None
        try:
            await rt.volumes.setup(self.client, pod, self.credentials.ca_bytes())
        except (VolumeError, ApiError, aiohttp.ClientError, OSError) as exc:
            message = str(exc)
            if message != rt.mount_error:
                rt.mount_error = message
                self._event(pod, "Warning", "FailedMount", message)
            rt.mount_failures += 1
            return min(0.5 * 2.0 ** min(rt.mount_failures, 6), 30.0)
        rt.mount_error = ""
        return None

    async def _maintain(self, pod: JSON, rt: AgentPod) -> float | None:
        """Replace tokens past 80 % of their life; seconds until the next one is due."""
        due = rt.volumes.next_refresh
        if due is None:
            return None
        if time.time() >= due:
            try:
                await rt.volumes.refresh(self.client, pod)
            except (VolumeError, ApiError, aiohttp.ClientError, OSError) as exc:
                log.warning(
                    "node agent %s: token of %s/%s not refreshed: %s", self.node_name, rt.namespace, rt.name, exc
                )
                return 5.0
            due = rt.volumes.next_refresh
        return max((due or time.time()) - time.time(), 0.05)

    async def _env_sources(self, pod: JSON, container: JSON) -> _Sources:
        """The ConfigMaps and Secrets the container's env reads, fetched now (a kubelet's Get strategy)."""
        namespace = str(pod["metadata"].get("namespace", ""))
        found = _Sources()
        for kind, name in sorted(referenced_sources(container)):
            plural = "configmaps" if kind == "ConfigMap" else "secrets"
            try:
                obj = await self.client.get_or_none(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
            except ApiError as exc:  # e.g. the Node authorizer has not seen the pod's reference yet
                raise ConfigError(exc.message) from exc
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise ConfigError(f'failed to sync {kind.lower()} cache: {plural} "{name}": {exc}') from exc
            if obj is not None:
                found.objects[(plural, namespace, name)] = obj
        return found

    def _release(self, pgid: int, _done: asyncio.Future[Exit]) -> None:
        if self._watchdog is not None:
            self._watchdog.remove(pgid)

    def _node_env(self, pod: JSON, rt: AgentPod, container: ContainerRuntime) -> dict[str, str]:
        """What a kubelet gives a pod to find its API server: in-cluster variables and the ServiceAccount volume."""
        host, port = self.credentials.host_port
        env = {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
        }
        account_dir = rt.volumes.mounted_at(container.spec, SERVICE_ACCOUNT_MOUNT)
        if account_dir is not None:
            env[SERVICE_ACCOUNT_DIR_ENV] = str(account_dir)
        return env

    async def _final_delete(self, pod: JSON, rt: AgentPod) -> bool:
        return await self._delete_pod(pod)

    async def _delete_pod(self, pod: JSON) -> bool:
        """The kubelet's last word on a deleted pod: DELETE with grace 0 and its uid as precondition."""
        meta = pod["metadata"]
        if not meta.get("deletionGracePeriodSeconds"):
            return True  # already deleted with grace 0: the API server removes it without us
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }
        try:
            await self.client.request(
                "DELETE", f"/api/v1/namespaces/{meta.get('namespace', '')}/pods/{meta['name']}", body=body
            )
        except ApiError as exc:
            if exc.code not in (404, 409):
                log.warning("node agent %s: cannot delete pod %s: %s", self.node_name, meta["name"], exc)
                return False
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return True

    # ------------------------------------------------------------------------------ status
    async def _write_status(self, rt: AgentPod) -> bool:
        """Post the composed status (merge patch on pods/status, uid precondition); False to retry."""
        pod = self._cache.get(rt.uid)
        if pod is None:
            return True
        status = compose_pod_status(pod, rt, self.kopts.node_ip, rfc3339(self._now()))
        if rt.reason == SHUTDOWN_REASON and rt.stopped:
            status["phase"] = "Failed"
            conditions = [c for c in status["conditions"] if c.get("type") != "DisruptionTarget"]
            conditions.append(
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "TerminationByKubelet",
                    "message": SHUTDOWN_MESSAGE,
                    "lastTransitionTime": rfc3339(self._now()),
                }
            )
            status["conditions"] = conditions
        old = pod.get("status") or {}
        terminal = status["phase"] in TERMINAL
        if _normalised(status) == _normalised(old):
            rt.terminal = rt.terminal or terminal
            return True
        patch = dict(status)
        for key in _OWNED:
            if key not in status and key in old:
                patch[key] = None
        meta = pod["metadata"]
        try:
            updated = await self.client.request(
                "PATCH",
                f"/api/v1/namespaces/{meta.get('namespace', '')}/pods/{meta['name']}/status",
                body={"metadata": {"uid": rt.uid}, "status": patch},
                content_type=MERGE_PATCH,
            )
        except ApiError as exc:
            if exc.code in (404, 409):  # gone, or replaced by a pod of the same name: nothing to report
                return True
            log.warning("node agent %s: status of %s/%s not written: %s", self.node_name, rt.namespace, rt.name, exc)
            return False
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("node agent %s: status of %s/%s not written: %s", self.node_name, rt.namespace, rt.name, exc)
            return False
        self._observe(updated, enqueue=False)
        rt.terminal = rt.terminal or terminal
        return True

    # ------------------------------------------------------------------------------ events
    def _emit_event(self, body: JSON) -> None:
        """Queue the Event: `_event_loop` sends it, so a slow API server never holds up a pod's step."""
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(body)

    async def _event_loop(self) -> None:
        while True:
            body = await self._events.get()
            namespace = body["metadata"]["namespace"]
            try:
                await self.client.request("POST", f"/api/v1/namespaces/{namespace}/events", body=body)
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.debug("node agent %s: event not recorded: %s", self.node_name, exc)


class _Sources:
    """ConfigMaps and Secrets fetched for one container start, looked up as env.py looks them up."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], JSON] = {}

    def get(self, resource: tuple[str, str], namespace: str, name: str, /) -> JSON | None:
        return self.objects.get((resource[1], namespace, name))
