"""Projected volumes for the node agent's pods: the ServiceAccount token, `ca.crt` and `namespace`.

A real kubelet mounts `/var/run/secrets/kubernetes.io/serviceaccount` into every pod that
automounts its ServiceAccount: a *projected* volume (added by the ServiceAccount admission plugin,
`kube-api-access-*`) whose sources are a bound token from the TokenRequest API (audience and expiry
from the pod spec, bound to the pod so it dies with it), the cluster CA from the
`kube-root-ca.crt` ConfigMap and the namespace from the downward API. In-cluster clients read those
three files.

The agent has no mount namespaces, so it materialises every projected volume of a pod as a
directory `<pod dir>/volumes/<volume>/` and tells each container where the ServiceAccount one is
through the environment: `DOPS_SERVICE_ACCOUNT_DIR` (the directory a container mounts at the
well-known path). Files are replaced atomically (write, then rename), so a reader never sees a half
token. Tokens are refreshed as the kubelet's token manager does: once 80 % of their lifetime has
passed, and at least every `max_age` seconds (24 h on a kubelet).

Sources supported: `serviceAccountToken`, `configMap`, `secret`, `downwardAPI` (fieldRef only).
Other volume types (emptyDir, hostPath, PVCs, plain configMap/secret volumes) are not materialised.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import parse_time
from .client import ApiClient, ApiError

JSON = dict[str, Any]

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_DIR_ENV = "DOPS_SERVICE_ACCOUNT_DIR"
DEFAULT_TOKEN_SECONDS = 3600  # serviceAccountToken.expirationSeconds when the pod sets none
MAX_TOKEN_AGE = 24 * 3600.0  # the kubelet refreshes every token at least this often
REFRESH_FRACTION = 0.8


class VolumeError(Exception):
    """A volume could not be set up; `str()` is the kubelet's FailedMount message."""


def refresh_deadline(issued: float, requested_seconds: int, expires: float | None, max_age: float) -> float:
    """When a token issued at `issued` (epoch seconds) must be replaced: after 80 % of its lifetime
    (the shorter of what was asked for and what the server granted), and no later than `max_age`."""
    lifetime = float(requested_seconds)
    if expires is not None and expires > issued:
        lifetime = min(lifetime, expires - issued)
    return issued + min(REFRESH_FRACTION * lifetime, max_age)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.chmod(mode)
    os.replace(temporary, path)


def _field_value(pod: JSON, path: str) -> str:
    meta = pod.get("metadata") or {}
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".", 1)[1]) or {}
        return "".join(f'{key}="{values[key]}"\n' for key in sorted(values)).rstrip("\n")
    simple = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}
    if path in simple:
        return str(meta.get(simple[path], ""))
    raise VolumeError(f"unsupported fieldPath in a downwardAPI volume: {path}")


@dataclass
class TokenFile:
    """One `serviceAccountToken` source of a projected volume."""

    path: Path
    audience: str
    expiration_seconds: int
    refresh_at: float = 0.0  # epoch seconds; 0: not issued yet


@dataclass
class ProjectedVolume:
    name: str
    directory: Path
    sources: list[JSON]
    tokens: list[TokenFile] = field(default_factory=list)


class PodVolumes:
    """The projected volumes of one pod, set up before its containers start and refreshed while it runs."""

    def __init__(self, pod: JSON, root: Path, max_token_age: float = MAX_TOKEN_AGE) -> None:
        self.max_token_age = max_token_age
        self.volumes: list[ProjectedVolume] = []
        self.ready = False
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            projected = volume.get("projected")
            if not projected:
                continue
            name = str(volume.get("name", ""))
            directory = root / "volumes" / name
            entry = ProjectedVolume(name, directory, list(projected.get("sources") or []))
            for source in entry.sources:
                token = source.get("serviceAccountToken")
                if token:
                    entry.tokens.append(
                        TokenFile(
                            directory / str(token.get("path") or "token"),
                            str(token.get("audience") or ""),
                            int(token.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS),
                        )
                    )
            self.volumes.append(entry)

    def mounted_at(self, container: JSON, mount_path: str) -> Path | None:
        """The directory of the volume `container` mounts at `mount_path` (None when it mounts none there)."""
        for mount in container.get("volumeMounts") or []:
            if str(mount.get("mountPath", "")).rstrip("/") == mount_path:
                for volume in self.volumes:
                    if volume.name == mount.get("name"):
                        return volume.directory
        return None

    @property
    def next_refresh(self) -> float | None:
        deadlines = [token.refresh_at for volume in self.volumes for token in volume.tokens if token.refresh_at]
        return min(deadlines, default=None)

    async def setup(self, client: ApiClient, pod: JSON, default_ca: bytes) -> None:
        """Write every file of every projected volume; VolumeError (the FailedMount message) if one cannot be."""
        for volume in self.volumes:
            try:
                await self._project(client, pod, volume, default_ca)
            except ApiError as exc:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{volume.name}" : {exc.message}') from exc
            except VolumeError as exc:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{volume.name}" : {exc}') from exc
        self.ready = True

    async def refresh(self, client: ApiClient, pod: JSON, now: float | None = None) -> None:
        """Replace every token whose refresh time has come (ApiError/VolumeError if the server refuses)."""
        moment = time.time() if now is None else now
        for volume in self.volumes:
            for token in volume.tokens:
                if token.refresh_at and moment >= token.refresh_at:
                    await self._issue(client, pod, token)

    async def _project(self, client: ApiClient, pod: JSON, volume: ProjectedVolume, default_ca: bytes) -> None:
        meta = pod["metadata"]
        namespace = str(meta.get("namespace", ""))
        volume.directory.mkdir(parents=True, exist_ok=True)
        tokens = iter(volume.tokens)
        for source in volume.sources:
            if source.get("serviceAccountToken"):
                await self._issue(client, pod, next(tokens))
            elif source.get("configMap") or source.get("secret"):
                kind = "configMap" if source.get("configMap") else "secret"
                ref = source[kind]
                name = str(ref.get("name", ""))
                plural = "configmaps" if kind == "configMap" else "secrets"
                obj = await client.get_or_none(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
                if obj is None:
                    if ref.get("optional"):
                        continue
                    if kind == "configMap" and name == "kube-root-ca.crt" and default_ca:
                        obj = {"data": {"ca.crt": default_ca.decode()}}  # an API server without the publisher
                    else:
                        raise VolumeError(f'{"configmap" if kind == "configMap" else "secret"} "{name}" not found')
                data = _data(obj, kind)
                items = ref.get("items") or [{"key": key, "path": key} for key in sorted(data)]
                for item in items:
                    key = str(item.get("key", ""))
                    if key not in data:
                        if ref.get("optional"):
                            continue
                        raise VolumeError(f"configmap references non-existent config key: {key}")
                    _write_atomic(volume.directory / str(item.get("path") or key), data[key], 0o644)
            elif source.get("downwardAPI"):
                for item in source["downwardAPI"].get("items") or []:
                    field_ref = item.get("fieldRef")
                    if not field_ref:
                        continue  # resourceFieldRef: not materialised (see the module docstring)
                    value = _field_value(pod, str(field_ref.get("fieldPath", "")))
                    _write_atomic(volume.directory / str(item.get("path", "")), value.encode(), 0o644)

    async def _issue(self, client: ApiClient, pod: JSON, token: TokenFile) -> None:
        """TokenRequest for the pod's ServiceAccount, bound to the pod, with the source's audience and expiry."""
        meta = pod["metadata"]
        account = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        spec: JSON = {
            "expirationSeconds": token.expiration_seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        }
        if token.audience:
            spec["audiences"] = [token.audience]
        issued = time.time()
        answer = await client.request(
            "POST",
            f"/api/v1/namespaces/{meta.get('namespace', '')}/serviceaccounts/{account}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        status = answer.get("status") or {}
        value = str(status.get("token") or "")
        if not value:
            raise VolumeError(f'the TokenRequest for serviceaccount "{account}" returned no token')
        _write_atomic(token.path, value.encode(), 0o600)
        expires = _epoch(str(status.get("expirationTimestamp") or ""))
        granted = int((answer.get("spec") or {}).get("expirationSeconds") or token.expiration_seconds)
        token.refresh_at = refresh_deadline(issued, granted, expires, self.max_token_age)


def _data(obj: JSON, kind: str) -> dict[str, bytes]:
    if kind == "configMap":
        out = {str(k): str(v).encode() for k, v in (obj.get("data") or {}).items()}
        for key, value in (obj.get("binaryData") or {}).items():
            out.setdefault(str(key), base64.b64decode(str(value)))
        return out
    return {str(k): base64.b64decode(str(v)) for k, v in (obj.get("data") or {}).items()}


def _epoch(value: str) -> float | None:
    moment = parse_time(value) if value else None
    return moment.timestamp() if moment is not None else None
