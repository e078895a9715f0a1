"""Start and stop a real Kubernetes control plane (etcd + kube-apiserver + controller manager + scheduler).

Test infrastructure only: product code never imports this. The binaries come from `make k8s`
(scripts/build_k8s.py). The cluster is configured the way a kubeadm/kind cluster is where it
matters to an operator: TLS everywhere with a CA made for the run, client-certificate identities,
service-account tokens signed by the cluster's own key and issuer, `Node,RBAC` authorization, the
default admission chain plus PodSecurity, ValidatingAdmissionPolicy, NodeRestriction and
OwnerReferencesPermissionEnforcement, and the controllers dops depends on. There is no kubelet:
the node agent (a separate process) plays the node.

Every component runs in its own process group with its log in `<root>/logs/<component>.log`; `stop()`
ends the groups (SIGTERM, then SIGKILL after a grace) and deletes the temporary root. Components
started for a test also get a parent-death signal, so a test run killed with -9 leaves nothing
behind. Ports are picked at random on 127.0.0.1; a clash (another process took the port between the
pick and the bind) is retried with fresh ports.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.realcluster.pki import ClusterPKI, KeyPair

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
ISSUER = "https://kubernetes.default.svc.cluster.local"
# The controllers dops needs, by the names kube-controller-manager's --controllers takes. "*" would
# add volume, IPAM and cloud controllers that only cost CPU on a node-less test cluster.
CONTROLLERS = (
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "deployment-controller",
    "replicaset-controller",
    "disruption-controller",
    "resourcequota-controller",
    "clusterrole-aggregation-controller",
    "pod-garbage-collector-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "endpointslice-controller",
    "validatingadmissionpolicy-status-controller",
)
ADMISSION_PLUGINS = "NodeRestriction,PodSecurity,ValidatingAdmissionPolicy,OwnerReferencesPermissionEnforcement"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
PR_SET_PDEATHSIG = 1


class ClusterError(Exception):
    """The control plane could not be started; the message is one readable line (plus log tails)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGKILL to this child when the process that started it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def kubeconfig_document(url: str, ca: Path, user: str, credentials: dict[str, str]) -> dict[str, Any]:
    """A kubeconfig with everything embedded (every client — kubectl, helm, kopf, pykube — reads the data form)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "dops-real",
                "cluster": {"server": url, "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode()},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "dops-real", "context": {"cluster": "dops-real", "user": user, "namespace": "default"}}],
        "current-context": "dops-real",
    }


def cert_credentials(pair: KeyPair) -> dict[str, str]:
    return {
        "client-certificate-data": base64.b64encode(pair.cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(pair.key.read_bytes()).decode(),
    }


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int

    @classmethod
    def pick(cls, apiserver: int | None = None) -> Ports:
        return cls(free_port(), free_port(), apiserver or free_port())


@dataclass
class RealCluster:
    """One running control plane. Use `RealCluster.start(...)` (or the `running(...)` context manager)."""

    bin_dir: Path
    root: Path
    ports: Ports
    owns_root: bool = True
    die_with_parent: bool = True
    controllers: tuple[str, ...] = CONTROLLERS
    extra_apiserver_flags: tuple[str, ...] = ()
    extra_controller_manager_flags: tuple[str, ...] = ()
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started_seconds: float = 0.0

    # -- paths and clients -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (client certificate in `system:masters`)."""
        return self.root / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def admin(self) -> KeyPair:
        return KeyPair(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")

    def admin_session(self) -> requests.Session:
        """A requests session as the admin, trusting only the cluster CA.

        `trust_env` is off: requests lets REQUESTS_CA_BUNDLE (set on many machines) override `verify`.
        """
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.ca_file)
        session.cert = (str(self.admin.cert), str(self.admin.key))
        return session

    def ssl_context(self, client: KeyPair | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        pair = client or self.admin
        context.load_cert_chain(str(pair.cert), str(pair.key))
        return context

    def write_kubeconfig(self, path: Path, *, user: str = "admin", token: str | None = None) -> Path:
        """A kubeconfig for the admin (default) or for a bearer token (a ServiceAccount's or a test user's)."""
        credentials = {"token": token} if token is not None else cert_credentials(self.admin)
        path.write_text(yaml.safe_dump(kubeconfig_document(self.url, self.ca_file, user, credentials)))
        path.chmod(0o600)
        return path

    def log_tail(self, component: str, lines: int = 15) -> str:
        path = self.log_dir / f"{component}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        bin_dir: Path,
        *,
        root: Path | None = None,
        apiserver_port: int | None = None,
        timeout: float = 120.0,
        die_with_parent: bool = True,
        extra_apiserver_flags: tuple[str, ...] = (),
        extra_controller_manager_flags: tuple[str, ...] = (),
        attempts: int = 3,
    ) -> RealCluster:
        """Start every component and wait until ready; on failure stop what started and raise ClusterError."""
        missing = [name for name in COMPONENTS if not (bin_dir / name).is_file()]
        if missing:
            raise ClusterError(f"{', '.join(missing)} not found in {bin_dir}: run `make k8s` first")
        if apiserver_port is not None and port_in_use(apiserver_port):
            raise ClusterError(f"port {apiserver_port} on 127.0.0.1 is already in use: choose another or omit --port")
        last_error: ClusterError | None = None
        for attempt in range(attempts):
            owns_root = root is None
            directory = Path(tempfile.mkdtemp(prefix="dops-k8s-")) if root is None else root
            cluster = cls(
                bin_dir=bin_dir,
                root=directory,
                ports=Ports.pick(apiserver_port),
                owns_root=owns_root,
                die_with_parent=die_with_parent,
                extra_apiserver_flags=extra_apiserver_flags,
                extra_controller_manager_flags=extra_controller_manager_flags,
            )
            try:
                cluster._boot(timeout)
                return cluster
            except ClusterError as exc:
                clash = cluster._port_clash()
                cluster.stop(remove=owns_root or not clash)
                if not clash or apiserver_port is not None or attempt == attempts - 1:
                    raise
                last_error = exc  # someone took a port between pick and bind: try fresh ports
            except BaseException:
                cluster.stop()
                raise
        raise last_error or ClusterError("the control plane did not start")

    def _port_clash(self) -> bool:
        return any("address already in use" in self.log_tail(name, 200).lower() for name in ("etcd", "kube-apiserver"))

    def _boot(self, timeout: float) -> None:
        began = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        pki = ClusterPKI(self.pki_dir)
        pki.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=("127.0.0.1", SERVICE_IP),
        )
        pki.issue("admin", "dops-admin", organization="system:masters")
        pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters")
        controller_manager = pki.issue("controller-manager", "system:kube-controller-manager")
        scheduler = pki.issue("scheduler", "system:kube-scheduler")
        self.write_kubeconfig(self.kubeconfig)
        for name, pair in (("controller-manager", controller_manager), ("scheduler", scheduler)):
            document = kubeconfig_document(self.url, self.ca_file, name, cert_credentials(pair))
            (self.root / f"{name}.kubeconfig").write_text(yaml.safe_dump(document))
        deadline = began + timeout
        self._spawn("etcd", self._etcd_command())
        self._wait(deadline, "etcd", self._etcd_healthy)
        self._spawn("kube-apiserver", self._apiserver_command())
        self._wait(deadline, "kube-apiserver /readyz", self._apiserver_ready)
        self._spawn("kube-controller-manager", self._controller_manager_command())
        self._spawn("kube-scheduler", self._scheduler_command())
        self._wait(deadline, "the default ServiceAccount", self._default_service_account_exists)
        self.started_seconds = time.monotonic() - began
        (self.root / "cluster.json").write_text(json.dumps(self.describe(), indent=2))

    def describe(self) -> dict[str, Any]:
        """What `python -m tests.realcluster down` needs to stop this cluster from another process."""
        return {
            "url": self.url,
            "kubeconfig": str(self.kubeconfig),
            "root": str(self.root),
            "owns_root": self.owns_root,
            "processes": {
                name: {"pid": proc.pid, "binary": str(self.bin_dir / name)} for name, proc in self.processes.items()
            },
        }

    def _etcd_command(self) -> list[str]:
        client, peer = f"http://127.0.0.1:{self.ports.etcd_client}", f"http://127.0.0.1:{self.ports.etcd_peer}"
        return [
            str(self.bin_dir / "etcd"),
            "--name=default",
            f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",  # a test cluster's data dies with it; fsync only costs time
            "--log-level=warn",
        ]

    def _apiserver_command(self) -> list[str]:
        pki = self.pki_dir
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports.apiserver}",
            f"--cert-dir={self.root / 'certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-account-issuer={ISSUER}",
            "--authorization-mode=Node,RBAC",
            f"--enable-admission-plugins={ADMISSION_PLUGINS}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # The advertised address is loopback, which Endpoints may not hold: keep the kubernetes
            # Service without endpoints instead of logging a failed reconcile every 10 s.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            *self.extra_apiserver_flags,
        ]

    def _controller_manager_command(self) -> list[str]:
        kubeconfig = self.root / "controller-manager.kubeconfig"
        return [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
            f"--root-ca-file={self.ca_file}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--controllers={','.join(self.controllers)}",
            *self.extra_controller_manager_flags,  # e.g. a short --node-monitor-grace-period for node-loss tests
        ]

    def _scheduler_command(self) -> list[str]:
        kubeconfig = self.root / "scheduler.kubeconfig"
        return [
            str(self.bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
        ]

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        try:
            self.processes[name] = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,  # its own process group: stop() ends it and every child
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        finally:
            log.close()

    def _wait(self, deadline: float, what: str, probe: Callable[[], bool]) -> None:
        while True:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise ClusterError(
                        f"{name} exited with code {proc.returncode} while waiting for {what}\n{self._tails()}"
                    )
            with contextlib.suppress(OSError, urllib.error.URLError, ssl.SSLError, ValueError):
                if probe():
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"the control plane was not ready in time (waiting for {what})\n{self._tails()}")
            time.sleep(0.1)

    def _tails(self) -> str:
        return "\n".join(
            f"--- last lines of {name}.log ---\n{self.log_tail(name)}" for name in COMPONENTS if name in self.processes
        )

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports.etcd_client}/health", timeout=2) as response:
            return bool(json.loads(response.read()).get("health") == "true")

    def request(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """An admin GET (for readiness probes and small checks; tests use their own clients)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout, context=self.ssl_context()) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def _apiserver_ready(self) -> bool:
        status, body = self.request("/readyz")
        return status == 200 and body.strip() == b"ok"

    def _default_service_account_exists(self) -> bool:
        status, _ = self.request("/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200

    # -- faults (the chaos suite on the real plane) -------------------------------------------------
    def kill_apiserver_and_restart(self, timeout: float = 60.0) -> float:
        """`kill -9` the kube-apiserver and start it again on the same port; returns the seconds until /readyz.

        What a crashed or upgraded API server does to its clients: every connection and watch drops, requests
        are refused until it listens again, and a watch resumed from a resourceVersion older than its fresh
        watch cache is answered 410 Gone."""
        proc = self.processes.pop("kube-apiserver")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        began = time.monotonic()
        self._spawn("kube-apiserver", self._apiserver_command())
        self._wait(began + timeout, "kube-apiserver /readyz after its restart", self._apiserver_ready)
        return time.monotonic() - began

    @contextlib.contextmanager
    def etcd_paused(self) -> Iterator[None]:
        """etcd frozen (SIGSTOP) while the block runs, resumed (SIGCONT) however it ends: the API server's
        requests hang, then time out, as when its storage stalls."""
        pid = self.processes["etcd"].pid
        os.killpg(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGCONT)

    def alive(self) -> bool:
        return bool(self.processes) and all(proc.poll() is None for proc in self.processes.values())

    def stop(self, *, remove: bool | None = None, grace: float = 10.0) -> None:
        """Stop every component (scheduler and controller manager first, etcd last) and remove the temp root."""
        for name in reversed(COMPONENTS):
            proc = self.processes.pop(name, None)
            if proc is not None:
                stop_process_group(proc.pid, grace, lambda p=proc: p.poll() is not None)  # type: ignore[misc]
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(1)
        if remove if remove is not None else self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> RealCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_process_group(pgid: int, grace: float, exited: Callable[[], bool]) -> None:
    """SIGTERM the group, wait up to `grace` for its leader, then SIGKILL whatever of the group is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not exited():
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def running(bin_dir: Path, **kwargs: Any) -> Iterator[RealCluster]:
    cluster = RealCluster.start(bin_dir, **kwargs)
    try:
        yield cluster
    finally:
        cluster.stop()
