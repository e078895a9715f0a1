"""The two control planes a test can run against, behind one small interface.

`EmbeddedPlane` wraps a fresh `dops.emulator` server (plain HTTP, no auth, one per test).
`RealPlane` wraps the session's real upstream control plane (TLS, client certificates, RBAC and
admission enforced); it is shared by the tests of a session, so after each test `reset()` removes
what the test made (namespaced objects in `default`, new namespaces, CRDs and their instances, new
cluster-scoped RBAC and admission policies), leaving the cluster as the session found it. One exception
keeps the real plane fast: a test CRD made by `install_test_crd` for a test that installs it through one of
the CRD_FIXTURES stays for the next such test (its instances deleted), because a real kube-apiserver pauses
the first create after a CRD is established for 2 s (see `install_test_crd`); any other test finds it gone.

Tests reach the server through `session()` (a `requests.Session` carrying the plane's credentials),
`connection()` (an `http.client` connection, for raw streaming reads) and `kubeconfig` (for kubectl,
helm, kopf, the kubernetes client and pykube), so one test body serves both planes.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
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
# Fixtures that install their CRD through install_test_crd: a test using one may adopt the identical CRD that
# the previous such test left on the real plane (reset() keeps it for the next test only if that one uses one).
CRD_FIXTURES = frozenset({"widgets", "gadgets"})
FINGERPRINT = "tests.dops.io/manifest-sha256"  # on a CRD install_test_crd made: the manifest it was made from


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
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._discovered: list[str] | None = None
        self.reusing_crds = False  # the running test installs its CRDs through CRD_FIXTURES
        self._kept_crds: set[str] = set()  # test CRDs reset() left for the next test (instances deleted)
        self._adopted_crds: set[str] = set()  # those of them the running test has taken over
        self.baseline = self._snapshot()

    def begin_test(self, reuses_crds: bool) -> None:
        """Before a test: the test CRDs the previous one left go, unless this test may adopt them."""
        self.reusing_crds = reuses_crds
        self._adopted_crds = set()
        if not reuses_crds:
            self._drop_kept_crds(self._kept_crds)

    def _drop_kept_crds(self, names: set[str]) -> None:
        """Delete the kept test CRDs `names` (and their instances), wait until they are gone, forget them."""
        if names:
            self._drop_crds([crd for crd in self._items(CRDS) if crd["metadata"]["name"] in names])
            self._wait_gone(CRDS, names)
            self._kept_crds -= names

    def _drop_crds(self, crds: list[JSON]) -> None:
        """Delete `crds` and (first, finalizers stripped: kopf's would block a CRD's deletion) their instances."""
        self._concurrently(
            self._delete, [item for found in self._concurrently(self._crd_instances, crds) for item in found]
        )
        self._concurrently(self._delete, [(CRDS, crd) for crd in crds])

    def adopt_crd(self, manifest: JSON) -> JSON | None:
        """The CRD the previous test made from this very manifest, still as made; None when there is none.

        Before None, every CRD the previous test left and this one has not adopted is deleted: one of the same
        name but another manifest, or one whose names (singular, kind) the new CRD would conflict with."""
        name = manifest["metadata"]["name"]
        if self.reusing_crds and name in self._kept_crds:
            response = self._retrying("GET", f"{self.url}{CRDS}/{name}")
            live: JSON = response.json() if response.status_code == 200 else {}
            fingerprint = manifest["metadata"]["annotations"][FINGERPRINT]
            if live and _reusable(live) and live["metadata"]["annotations"][FINGERPRINT] == fingerprint:
                self._adopted_crds.add(name)
                return live
        self._drop_kept_crds(self._kept_crds - self._adopted_crds)
        return None

    def session(self) -> requests.Session:
        return self.cluster.admin_session()

    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        context: ssl.SSLContext = self.cluster.ssl_context()
        return http.client.HTTPSConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout, context=context)

    # -- isolation between tests -----------------------------------------------------------
    # reset() runs after every real-plane test (about 500 a run), so it lists and deletes concurrently, each
    # pool thread with its own admin connection: one listing per kind across all namespaces, not one per
    # kind and namespace.
    def _connection(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self.session()
        return session

    def _concurrently(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="reset")
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return list(self._pool.map(fn, items))

    def _items(self, path: str) -> list[JSON]:
        response = self._retrying("GET", self.url + path)
        if response.status_code in (404, 405):  # a kind that is gone (its CRD deleted) or cannot be listed
            return []
        response.raise_for_status()
        items: list[JSON] = response.json().get("items", [])
        return items

    def _names(self, path: str) -> set[str]:
        return {item["metadata"]["name"] for item in self._items(path)}

    def _snapshot(self) -> Baseline:
        namespaced = [f"{prefix}/{plural}" for prefix, plural in NAMESPACED_KINDS]
        cluster = [f"{prefix}/{plural}" for prefix, plural in CLUSTER_KINDS]
        in_default = [f"{prefix}/namespaces/default/{plural}" for prefix, plural in NAMESPACED_KINDS]
        names = dict(
            zip(
                [*in_default, *cluster, NAMESPACES, CRDS],
                self._concurrently(self._names, [*in_default, *cluster, NAMESPACES, CRDS]),
                strict=True,
            )
        )
        return Baseline(
            namespaced={key: names[path] for key, path in zip(namespaced, in_default, strict=True)},
            cluster={key: names[key] for key in cluster},
            namespaces=names[NAMESPACES],
            crds=names[CRDS],
        )

    def _delete(self, item: tuple[str, JSON]) -> None:
        """Delete one listed object (its collection's path, the object): finalizers stripped, no grace."""
        collection, obj = item
        meta = obj["metadata"]
        namespace = meta.get("namespace")
        path = f"{self.url}{_in_namespace(collection, namespace) if namespace else collection}/{meta['name']}"
        if meta.get("finalizers"):
            self._retrying(
                "PATCH",
                path,
                json={"metadata": {"finalizers": None}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
        self._retrying("DELETE", path, json={"gracePeriodSeconds": 0, "propagationPolicy": "Background"})

    def _wait_gone(self, collection: str, names: Iterable[str], timeout: float = 60.0) -> None:
        pending = set(names)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            pending &= self._names(collection)
            if pending:
                time.sleep(0.1)
        if pending:
            raise AssertionError(f"reset: {collection} {sorted(pending)} still present after {timeout}s")

    def _crd_instances(self, crd: JSON) -> list[tuple[str, JSON]]:
        """Every instance of `crd`, to delete (finalizers stripped: kopf's would block the CRD's deletion)."""
        spec = crd.get("spec") or {}
        served = [v["name"] for v in spec.get("versions", []) if v.get("served")]
        if not served:
            return []
        collection = f"/apis/{spec['group']}/{served[0]}/{spec['names']['plural']}"
        return [(collection, item) for item in self._items(collection)]

    def _namespaced_kinds(self) -> list[str]:
        """Every built-in namespaced collection that can be listed and deleted (discovery, asked once)."""
        if self._discovered is None:
            groups = self._retrying("GET", f"{self.url}/apis").json().get("groups", [])
            versions = ["/api/v1"] + [f"/apis/{g['preferredVersion']['groupVersion']}" for g in groups]
            found = []
            for version, response in zip(
                versions, self._concurrently(lambda v: self._retrying("GET", self.url + v), versions), strict=True
            ):
                if response.status_code != 200:
                    continue
                for resource in response.json().get("resources", []):
                    verbs = set(resource.get("verbs") or ())
                    if resource.get("namespaced") and "/" not in resource["name"] and {"list", "delete"} <= verbs:
                        found.append(f"{version}/{resource['name']}")
            self._discovered = found
        return self._discovered

    def _finish_namespaces(self, names: list[str]) -> None:
        """Make deleted namespaces go now, not after the namespace controller's 5 s grace: empty them of every
        kind (discovery), then clear their `kubernetes` finalizer, as the namespace controller would.

        Only namespaces reset() deleted itself are finished: their names may come back in the next test. Admission
        refuses new objects in a terminating namespace, so nothing appears between the purge and the finalize."""
        if not names:
            return
        kinds = [(kind, ns) for kind in self._namespaced_kinds() for ns in names]
        listed = self._concurrently(lambda pair: self._items(_in_namespace(*pair)), kinds)
        self._concurrently(
            self._delete, [(kind, item) for (kind, _), items in zip(kinds, listed, strict=True) for item in items]
        )

        def finalize(ns: str) -> None:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {"finalizers": []}}
            self._retrying("PUT", f"{self.url}{NAMESPACES}/{ns}/finalize", json=body)

        self._concurrently(finalize, names)

    def _retrying(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One admin request, retried while the server answers 429/5xx (a CRD's storage is still starting)."""
        deadline = time.monotonic() + 30
        while True:
            response = self._connection().request(method, url, timeout=30, **kwargs)
            if response.status_code not in (429, 500, 503, 504) or time.monotonic() > deadline:
                return response
            time.sleep(0.2)

    def reset(self) -> None:
        """Remove what a test made; afterwards the cluster holds what the baseline holds."""
        namespaced = [f"{prefix}/{plural}" for prefix, plural in NAMESPACED_KINDS]
        cluster = [f"{prefix}/{plural}" for prefix, plural in CLUSTER_KINDS]
        paths = [CRDS, NAMESPACES, *namespaced, *cluster]
        listed = dict(zip(paths, self._concurrently(self._items, paths), strict=True))
        kept = SYSTEM_OBJECT_NAMES  # what the control plane makes by itself, even after the baseline was taken

        new_crds = [crd for crd in listed[CRDS] if crd["metadata"]["name"] not in self.baseline.crds | kept]
        reusable = [crd for crd in new_crds if self.reusing_crds and _reusable(crd)]
        instances = [item for found in self._concurrently(self._crd_instances, reusable) for item in found]
        self._concurrently(self._delete, instances)
        self._kept_crds = {crd["metadata"]["name"] for crd in reusable}
        new_crds = [crd for crd in new_crds if crd["metadata"]["name"] not in self._kept_crds]
        self._drop_crds(new_crds)

        namespaces = listed[NAMESPACES]
        doomed_namespaces = {i["metadata"]["name"] for i in namespaces} - self.baseline.namespaces
        # A namespace its test already deleted (the `namespace` fixtures: a fresh uuid name each time, never
        # reused) is left to terminate by itself; its content is deleted below with finalizers stripped, so it
        # cannot stay Terminating. One reset() deletes itself may have a name the next test uses again: that one
        # is finished (_finish_namespaces) and waited for.
        terminating = {i["metadata"]["name"] for i in namespaces if i["metadata"].get("deletionTimestamp")}
        doomed: list[tuple[str, JSON]] = []
        for collection in namespaced:
            in_default = self.baseline.namespaced.get(collection, set()) | kept
            for item in listed[collection]:
                meta = item["metadata"]
                ns, name = meta.get("namespace"), meta["name"]
                if (ns == "default" and name not in in_default) or (ns in doomed_namespaces and name not in kept):
                    doomed.append((collection, item))
        for collection in cluster:
            keep = self.baseline.cluster.get(collection, set()) | kept
            doomed += [(collection, item) for item in listed[collection] if item["metadata"]["name"] not in keep]
        self._concurrently(self._delete, doomed)

        finishing = sorted(doomed_namespaces - terminating)
        self._concurrently(self._delete, [(NAMESPACES, {"metadata": {"name": ns}}) for ns in finishing])
        self._finish_namespaces(finishing)
        self._wait_gone(CRDS, [crd["metadata"]["name"] for crd in new_crds])
        self._wait_gone(NAMESPACES, finishing)


def _reusable(crd: JSON) -> bool:
    """Made by install_test_crd and never changed since (a test that changed its spec bumped its generation)."""
    meta = crd["metadata"]
    return (
        FINGERPRINT in (meta.get("annotations") or {})
        and meta.get("generation") == 1
        and not meta.get("deletionTimestamp")
    )


def install_test_crd(plane: Plane, manifest: JSON, timeout: float = 60.0) -> JSON:
    """Create a test CRD and wait until its resources are listed in discovery and served.

    On the real plane the CRD made from the same manifest by the previous test is adopted when that test and
    this one both install it through CRD_FIXTURES: a real kube-apiserver holds every create of a custom
    resource for 2 s while its CRD became Established less than 2 s ago (a safeguard for HA apiservers), which
    cost each such test 2 s. Instances are never carried over (reset() deleted them)."""
    manifest = json.loads(json.dumps(manifest))
    fingerprint = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    manifest["metadata"].setdefault("annotations", {})[FINGERPRINT] = fingerprint
    session = plane.session()
    adopted = plane.adopt_crd(manifest) if isinstance(plane, RealPlane) else None
    if adopted is not None:
        return adopted
    response = session.post(plane.url + CRDS, json=manifest, timeout=30)
    assert response.status_code == 201, (
        f"creating CRD {manifest['metadata']['name']}: {response.status_code} {response.text}"
    )
    created: JSON = response.json()
    spec = manifest["spec"]
    group, plural = spec["group"], spec["names"]["plural"]
    version = next(v["name"] for v in spec["versions"] if v.get("served", True))
    scoped = spec.get("scope", "Namespaced") == "Namespaced"
    listing = f"/apis/{group}/{version}/namespaces/default/{plural}" if scoped else f"/apis/{group}/{version}/{plural}"
    deadline = time.monotonic() + timeout  # a real apiserver's discovery follows the CRD from a controller
    while True:
        discovery = session.get(f"{plane.url}/apis/{group}/{version}", timeout=30)
        served = discovery.status_code == 200 and any(
            r.get("name") == plural for r in discovery.json().get("resources", [])
        )
        # ... and it answers 429 "storage is (re)initializing" for a moment after that.
        if served and session.get(plane.url + listing, timeout=30).status_code == 200:
            return created
        if time.monotonic() > deadline:
            raise AssertionError(f"CRD {manifest['metadata']['name']}: not served within {timeout} s")
        time.sleep(0.05)


def _in_namespace(collection: str, namespace: str) -> str:
    """`/api/v1/pods` in `ns` → `/api/v1/namespaces/ns/pods`."""
    prefix, _, plural = collection.rpartition("/")
    return f"{prefix}/namespaces/{namespace}/{plural}"


@contextlib.contextmanager
def with_dops_crds(real: RealPlane) -> Iterator[RealPlane]:
    """The real plane with this checkout's crds/ installed through the API; reset afterwards."""
    install_crds(real, sorted((Path(__file__).resolve().parent.parent / "crds").glob("*.yaml")))
    try:
        yield real
    finally:
        real.reset()


class Reachable(Protocol):
    """What install_crds needs of a control plane: a Plane, or the chaos harness's Endpoint."""

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...

    def session(self) -> requests.Session: ...


def install_crds(plane: Reachable, paths: Iterable[Path], timeout: float = 30.0) -> list[str]:
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
