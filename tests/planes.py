"""The two control planes a test can run against, behind one small interface.

`EmbeddedPlane` wraps a fresh `dops.emulator` server (plain HTTP, no auth, one per test).
`RealPlane` wraps the session's real upstream control plane (TLS, client certificates, RBAC and
admission enforced); it is shared by the tests of a session, so after each test `reset()` removes
what the test made (namespaced objects in `default`, new namespaces, CRDs and their instances, new
cluster-scoped RBAC and admission policies), leaving the cluster as the session found it.

Tests reach the server through `session()` (a `requests.Session` carrying the plane's credentials),
`connection()` (an `http.client` connection, for raw streaming reads) and `kubeconfig` (for kubectl,
helm, kopf, the kubernetes client and pykube), so one test body serves both planes.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from dops.emulator import EmbeddedServer
from tests.realcluster.launcher import RealCluster

PlaneName = Literal["embedded", "real"]
JSON = dict[str, Any]

# Namespaced kinds that tests create in `default`, as (API prefix, plural). CR instances go with their CRDs.
NAMESPACED_KINDS = (
    ("/api/v1", "pods"),
    ("/api/v1", "configmaps"),
    ("/api/v1", "secrets"),
    ("/api/v1", "services"),
    ("/api/v1", "serviceaccounts"),
    ("/api/v1", "events"),
    ("/api/v1", "resourcequotas"),
    ("/api/v1", "limitranges"),
    ("/apis/apps/v1", "deployments"),
    ("/apis/apps/v1", "replicasets"),
    ("/apis/batch/v1", "jobs"),
    ("/apis/batch/v1", "cronjobs"),
    ("/apis/coordination.k8s.io/v1", "leases"),
    ("/apis/policy/v1", "poddisruptionbudgets"),
    ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
)
CLUSTER_KINDS = (
    ("/apis/rbac.authorization.k8s.io/v1", "clusterroles"),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings"),
    ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicies"),
    ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings"),
    ("/apis/admissionregistration.k8s.io/v1", "validatingwebhookconfigurations"),
    ("/apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations"),
    ("/apis/scheduling.k8s.io/v1", "priorityclasses"),
    ("/api/v1", "nodes"),
)
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
NAMESPACES = "/api/v1/namespaces"


class Plane:
    """What a test needs from a control plane, whichever one it is."""

    name: PlaneName
    url: str
    kubeconfig: Path

    @property
    def real(self) -> bool:
        return self.name == "real"

    @property
    def embedded(self) -> bool:
        return self.name == "embedded"

    def session(self) -> requests.Session:
        raise NotImplementedError

    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.name} control plane at {self.url}>"


class EmbeddedPlane(Plane):
    def __init__(self, server: EmbeddedServer, kubeconfig: Path) -> None:
        self.name = "embedded"
        self.server = server
        self.url = server.url
        self.kubeconfig = kubeconfig

    def session(self) -> requests.Session:
        return requests.Session()

    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)


Target = Plane | EmbeddedServer | str


def as_plane(target: Target) -> Plane:
    """A Plane for what older helpers were given: a Plane, an EmbeddedServer, or a plain http URL (no auth)."""
    if isinstance(target, Plane):
        return target
    if isinstance(target, EmbeddedServer):
        return EmbeddedPlane(target, getattr(target, "kubeconfig", Path("/nonexistent")))
    return _UrlPlane(target)


class _UrlPlane(EmbeddedPlane):
    def __init__(self, url: str) -> None:  # an unauthenticated plain-HTTP server (the emulator, by URL)
        self.name = "embedded"
        self.url = url
        self.kubeconfig = Path("/nonexistent")


@dataclass
class Baseline:
    """Names present when the session's cluster became ready; reset() keeps exactly these."""

    namespaced: dict[str, set[str]] = field(default_factory=dict)
    cluster: dict[str, set[str]] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    crds: set[str] = field(default_factory=set)


class RealPlane(Plane):
    def __init__(self, cluster: RealCluster, kubeconfig: Path | None = None) -> None:
        self.name = "real"
        self.cluster = cluster
        self.url = cluster.url
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self._admin = self.session()
        self.baseline = self._snapshot()

    def session(self) -> requests.Session:
        return self.cluster.admin_session()

    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        context: ssl.SSLContext = self.cluster.ssl_context()
        return http.client.HTTPSConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout, context=context)

    # -- isolation between tests -----------------------------------------------------------
    def _names(self, path: str) -> set[str]:
        response = self._retrying("GET", self.url + path)
        if response.status_code == 404:
            return set()
        response.raise_for_status()
        return {item["metadata"]["name"] for item in response.json().get("items", [])}

    def _snapshot(self) -> Baseline:
        return Baseline(
            namespaced={
                f"{prefix}/{plural}": self._names(f"{prefix}/namespaces/default/{plural}")
                for prefix, plural in NAMESPACED_KINDS
            },
            cluster={f"{prefix}/{plural}": self._names(f"{prefix}/{plural}") for prefix, plural in CLUSTER_KINDS},
            namespaces=self._names(NAMESPACES),
            crds=self._names(CRDS),
        )

    def _delete_all(self, collection: str, keep: Iterable[str]) -> list[str]:
        """Delete every object of `collection` not in `keep`, finalizers stripped, no grace; returns the names.

        What the control plane makes by itself (SYSTEM_OBJECT_NAMES) is always kept, even when the baseline
        was taken before a controller made it.
        """
        kept = set(keep) | SYSTEM_OBJECT_NAMES
        doomed = sorted(self._names(collection) - kept)
        for name in doomed:
            path = f"{self.url}{collection}/{name}"
            self._retrying(
                "PATCH",
                path,
                json={"metadata": {"finalizers": None}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            self._retrying("DELETE", path, json={"gracePeriodSeconds": 0, "propagationPolicy": "Background"})
        return doomed

    def _wait_gone(self, collection: str, names: Iterable[str], timeout: float = 60.0) -> None:
        pending = set(names)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            pending &= self._names(collection)
            if pending:
                time.sleep(0.1)
        if pending:
            raise AssertionError(f"reset: {collection} {sorted(pending)} still present after {timeout}s")

    def _delete_crd_instances(self, crd: JSON) -> None:
        """Strip finalizers from and delete every instance of `crd` (kopf's finalizers would block its deletion)."""
        spec = crd["spec"]
        served = [v["name"] for v in spec.get("versions", []) if v.get("served")]
        if not served:
            return
        base = f"{self.url}/apis/{spec['group']}/{served[0]}"
        plural = spec["names"]["plural"]
        response = self._retrying("GET", f"{base}/{plural}")
        if response.status_code != 200:
            return
        for item in response.json().get("items", []):
            meta = item["metadata"]
            path = f"{base}/namespaces/{meta['namespace']}/{plural}" if meta.get("namespace") else f"{base}/{plural}"
            if meta.get("finalizers"):
                self._retrying(
                    "PATCH",
                    f"{path}/{meta['name']}",
                    json={"metadata": {"finalizers": None}},
                    headers={"Content-Type": "application/merge-patch+json"},
                )
            self._retrying("DELETE", f"{path}/{meta['name']}")

    def _retrying(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One admin request, retried while the server answers 429/5xx (a CRD's storage is still starting)."""
        deadline = time.monotonic() + 30
        while True:
            response = self._admin.request(method, url, timeout=30, **kwargs)
            if response.status_code not in (429, 500, 503, 504) or time.monotonic() > deadline:
                return response
            time.sleep(0.2)

    def reset(self) -> None:
        """Remove what a test made; afterwards the cluster holds what the baseline holds."""
        for crd_name in sorted(self._names(CRDS) - self.baseline.crds):
            crd = self._admin.get(f"{self.url}{CRDS}/{crd_name}", timeout=30).json()
            if "spec" in crd:
                self._delete_crd_instances(crd)
        doomed_crds = self._delete_all(CRDS, self.baseline.crds)
        for prefix, plural in NAMESPACED_KINDS:
            key = f"{prefix}/{plural}"
            self._delete_all(f"{prefix}/namespaces/default/{plural}", self.baseline.namespaced.get(key, set()))
        for prefix, plural in CLUSTER_KINDS:
            key = f"{prefix}/{plural}"
            self._delete_all(f"{prefix}/{plural}", self.baseline.cluster.get(key, set()))
        listed = self._retrying("GET", self.url + NAMESPACES).json().get("items", [])
        doomed_namespaces = [i["metadata"]["name"] for i in listed]
        doomed_namespaces = [ns for ns in doomed_namespaces if ns not in self.baseline.namespaces]
        # A namespace its test already deleted (the `namespace` fixtures: a fresh uuid name each time, never reused)
        # is left to finish terminating: the real namespace controller waits 5 s before it even starts
        # (namespaceDeletionGracePeriod), and waiting here cost every such test 5 s. Its content is deleted below
        # with finalizers stripped, so it cannot stay Terminating. A namespace reset() deletes itself may have a
        # name the next test uses again: that one is waited for.
        terminating = {i["metadata"]["name"] for i in listed if i["metadata"].get("deletionTimestamp")}
        for ns in doomed_namespaces:
            for prefix, plural in NAMESPACED_KINDS:
                self._delete_all(f"{prefix}/namespaces/{ns}/{plural}", ())
            if ns not in terminating:
                self._admin.delete(f"{self.url}{NAMESPACES}/{ns}", timeout=30)
        self._wait_gone(CRDS, doomed_crds)
        self._wait_gone(NAMESPACES, [ns for ns in doomed_namespaces if ns not in terminating])


@contextlib.contextmanager
def with_dops_crds(real: RealPlane) -> Iterator[RealPlane]:
    """The real plane with this checkout's crds/ installed through the API; reset afterwards."""
    install_crds(real, sorted((Path(__file__).resolve().parent.parent / "crds").glob("*.yaml")))
    try:
        yield real
    finally:
        real.reset()


def install_crds(plane: Plane, paths: Iterable[Path], timeout: float = 30.0) -> list[str]:
    """Create (or replace) the CRDs in `paths` through the API and wait until each is Established.

    The server judges them: a structural-schema or CEL-cost rejection fails here with the server's message.
    """
    import yaml

    session = plane.session()
    names = []
    for path in paths:
        for manifest in yaml.safe_load_all(path.read_text()):
            if not manifest or manifest.get("kind") != "CustomResourceDefinition":
                continue
            name = manifest["metadata"]["name"]
            response = session.post(plane.url + CRDS, json=manifest, timeout=30)
            if response.status_code == 409:
                live = session.get(f"{plane.url}{CRDS}/{name}", timeout=30).json()
                manifest["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
                response = session.put(f"{plane.url}{CRDS}/{name}", json=manifest, timeout=30)
            if response.status_code >= 300:
                raise AssertionError(f"{plane.name} control plane rejected {path.name}: {response.text}")
            names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = session.get(f"{plane.url}{CRDS}/{name}", timeout=30).json()
            conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"CRD {name} not Established on the {plane.name} plane: {crd.get('status')}")
            time.sleep(0.05)
    return names


# Objects a real control plane makes by itself in every namespace (the root-CA publisher's ConfigMap, the
# ServiceAccount controller's `default`, the `kubernetes` Service); the embedded one makes none of them.
SYSTEM_OBJECT_NAMES = frozenset({"kube-root-ca.crt", "default", "kubernetes"})


def made_by_test(items: Iterable[JSON]) -> list[JSON]:
    """`items` without the objects the control plane made by itself (see SYSTEM_OBJECT_NAMES)."""
    return [item for item in items if item.get("metadata", {}).get("name") not in SYSTEM_OBJECT_NAMES]
