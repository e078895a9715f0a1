"""Benchmark of the dops operator on either control plane, beside the raw-Job rate of the same plane.

`--plane embedded` (default): three processes, as in a cluster: the embedded control plane
(`python -m dops.emulator`, every controller, kubelet in *simulated* mode: pods carry
`dops.emulator/simulate` with a never-ending duration, so process start-up does not dominate a
control-plane measurement), the operator
(`dops.handlers.run_operator`, its own process so its RSS is its own), and this harness.

The harness submits N operations through `DelegatedOperationService.queue_operation` and plays the
worker's API protocol for every worker pod that starts, through the same `dops.service` calls the
real worker makes: claim (`set_running(required_state=scheduled, pod_name=...)`), three progress
reports through the worker's own `ProgressReporter` at the target's default interval (the first is written at
once, the others coalesce and the newest rides in the completion, as in `dops.worker.run`: one progress write),
`set_completed(required_state=running)`. The simulated pod keeps "running" after that, so the
operator stops its Job once the grace for a worker to exit has passed (as for a worker that hangs
after recording its result).

Printed:
- operations/s end to end (first create → last operation completed *and* processed by the operator);
- p50/p99 of create→scheduled (queuedAt → scheduledAt), scheduled→Job created (scheduledAt → Job
  ADDED seen on a watch), create→terminal (queuedAt → completedAt) and create→processed;
- API requests per operation by verb and resource (the emulator's /__emulator/stats), split into the
  harness's own (counted client-side) and the rest (the operator), the operator's writes per
  operation as it counts them itself (dops_api_writes_total), and stored writes per operation (RV delta);
- operator RSS (peak during the run);
- CPU milliseconds per operation of the operator, the control plane and the harness over the run, and the
  ceilings they set (the operator alone: one Python process; all three on this machine's cores): what limited
  the run;
- with 10,000 stored finished operations: operator restart time to first admission, and its RSS.

`--plane real`: the upstream control plane built from Go modules (`make k8s`; etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) with one node agent (`python -m dops.emulator.node`) that runs
the same simulated pods; the operator runs as a local process with the admin kubeconfig. API requests
are counted from the kube-apiserver's own `apiserver_request_total` (every component's requests reach
it over HTTP), stored writes from the etcd revision (which also counts leases and events).

Before the operators are measured, the same plane runs `--raw-jobs` bare Jobs (one simulated pod each
that ends at once) from one burst of creates to the last `Complete`: dops' operations/s is printed
beside that raw-Job rate, with their ratio, so the cost of dops over the platform is one number.

Also printed (issue 15), each beside its target:
- the operator's writes per operation, by verb and resource: writes of objects (operations and their
  labels, Jobs) are what the target counts; Events are printed apart and not counted (one per transition
  at most: Scheduled, Completed), and so are the harness's own writes (the user's create, the worker's);
- first sight: `kubectl apply`-style creates (no status) at idle, one every 100 ms, on a target in `mode:
  external` (queued, then left alone): created → `queued` p50/p99, from the create's request to the state
  on the harness's watch;
- label lag: the longest time an operation's `dops.io/run-state` label disagreed with its status, seen on
  the harness's watch (`--run-state-label`: the operator's and the harness's DOPS_RUN_STATE_LABEL; `auto`
  writes no label where the server selects by `status.runState`, so there is nothing to lag).

Targets (2-core machine, embedded plane): ≥ 60 operations/s end to end and ≥ 0.5 × the raw-Job rate,
≤ 4 operator writes per operation, created → queued p50 ≤ 100 ms and p99 ≤ 500 ms, label lag ≤ 500 ms,
operator RSS ≤ 250 MiB at 10,000 operations. On the real plane the numbers are printed, not
judged (its speed is the upstream control plane's on this machine).

Usage: python scripts/bench_operator.py [--plane embedded|real] [--ops 2000] [--stored 10000]
       [--concurrency 100] [--raw-jobs 500] [--controller-qps N] [--run-state-label auto|always|never]
       [--first-sight 50]
(BENCH_VERBOSE=1: the operator logs each reconcile's plan at DEBUG in its log, to see where writes go;
its logging costs the operator CPU, so throughput is lower then.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(1, str(REPO))  # tests.e2e.realplane: the real control plane and node agent (--plane real)

from dops import DelegatedOperationService  # noqa: E402
from dops.api.times import format_time, parse_time, utcnow  # noqa: E402
from dops.api.types import ExecutionProgress  # noqa: E402
from dops.domain.progress import DEFAULT_PROGRESS_INTERVAL_SECONDS  # noqa: E402
from dops.execution import ProgressReporter  # noqa: E402
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config  # noqa: E402
from dops.k8s.client import JSON_TYPE  # noqa: E402
from tests.processes import descendants  # noqa: E402

sys.path.insert(0, str(REPO / "scripts"))
from bench_support import (  # noqa: E402
    Proc,
    create_target,
    free_port,
    pct,
    process_cpu_seconds,
    start_emulator,
    stop_on_sigterm,
    wait,
)
from bench_support import emulator_stats as stats  # noqa: E402
from bench_support import url_ok as _ok  # noqa: E402

FLOOR_OPS_PER_SECOND = 60.0
FLOOR_RAW_RATIO = 0.5
FLOOR_WRITES_PER_OP = 4.0
FLOOR_FIRST_SIGHT_P50_MS = 100.0
FLOOR_FIRST_SIGHT_P99_MS = 500.0
FLOOR_LABEL_LAG_MS = 500.0
FLOOR_RSS_MIB = 250.0
NAMESPACE = "bench"
TARGET = "bench"
EXTERNAL_TARGET = "bench-external"  # first-sight probes: queued by the operator, then left alone
OBJECT_RESOURCES = ("delegatedoperations", "delegatedoperations/status", "jobs")  # what "operator writes" counts
JSON = dict[str, Any]


# ===================================================================================== processes


class EmbeddedBench:
    """The embedded control plane in its own process (every controller, simulated kubelet)."""

    name = "embedded"

    def __init__(self, work: Path) -> None:
        self.proc, self.kubeconfig, self.url = start_emulator(work, "all", 400000)

    def counters(self) -> JSON:
        """{"requests": {resource: {verb: n}}, "resourceVersion": stored writes so far}: the emulator's counters."""
        return stats(self.url)

    def cpu_seconds(self, operator_pid: int) -> float:
        """CPU time of the control plane so far: the emulator's process (its controllers and kubelet included)."""
        return self.proc.cpu_seconds()

    def stop(self) -> None:
        self.proc.stop()


class RealBench:
    """The upstream control plane plus one node agent (pods annotated as simulated run on it)."""

    name = "real"

    def __init__(self, work: Path, controller_qps: int | None = None) -> None:
        from tests.e2e.realplane import RealPlaneCluster, control_plane_binaries, find_clients

        tools, problem = find_clients()
        if tools is None:
            raise SystemExit(f"--plane real needs kubectl and helm: {problem} (run `make clients`)")
        print("starting the real control plane and a node agent ...", flush=True)
        # Upstream's defaults unless asked: kube-controller-manager's client at 20 requests/s (burst 30), which is
        # what bounds the raw-Job rate here, as on a default kind or kubeadm cluster.
        qps = (
            ()
            if controller_qps is None
            else (f"--kube-api-qps={controller_qps}", f"--kube-api-burst={2 * controller_qps}")
        )
        self.cluster = RealPlaneCluster(
            name="bench",
            tools=tools,
            workdir=work / "real",
            bin_dir=control_plane_binaries(),
            controller_manager_flags=qps,
        )
        try:
            self.cluster.create()
            self.cluster.start_node()
        except BaseException:
            self.cluster.delete()
            raise
        assert self.cluster.control_plane is not None
        self.control_plane = self.cluster.control_plane
        self.kubeconfig = self.cluster.kubeconfig
        self.url = self.control_plane.url
        self.session = self.control_plane.admin_session()
        install_crds(self.kubeconfig)

    def counters(self) -> JSON:
        """The same shape as the emulator's counters, from the kube-apiserver's metrics and the etcd revision."""
        text = self.session.get(self.url + "/metrics", timeout=30).text
        requests: dict[str, dict[str, int]] = {}
        for row in text.splitlines():
            if not row.startswith("apiserver_request_total{"):
                continue
            labels_text, value = row[len("apiserver_request_total{") :].rsplit("} ", 1)
            labels = dict(part.split("=", 1) for part in labels_text.split('",') if "=" in part)
            labels = {k: v.strip('"') for k, v in labels.items()}
            resource = labels.get("resource", "")
            if not resource:
                continue
            if labels.get("subresource"):
                resource = f"{resource}/{labels['subresource']}"
            verb = REAL_VERBS.get(labels.get("verb", ""), labels.get("verb", "").lower())
            requests.setdefault(resource, {})[verb] = requests.get(resource, {}).get(verb, 0) + int(float(value))
        revision = self.session.get(self.url + "/api/v1/namespaces?limit=1", timeout=30).json()
        return {"requests": requests, "resourceVersion": int(revision["metadata"]["resourceVersion"])}

    def cpu_seconds(self, operator_pid: int) -> float:
        """CPU time of the control plane so far: every process this harness started (etcd, kube-apiserver,
        kube-controller-manager, kube-scheduler, the node agent and its pods) but the operator."""
        return sum(process_cpu_seconds(pid) for pid in descendants(os.getpid()) if pid != operator_pid)

    def stop(self) -> None:
        self.session.close()
        self.cluster.delete()


def cpu_line(before: tuple[float, ...], after: tuple[float, ...], n: int, seconds: float) -> str:
    """CPU milliseconds per operation of the operator, the control plane and this harness over the measured run,
    and the ceilings they set: what limits the throughput, printed by each run. The operator is one Python process
    (its reconcile, Kopf and HTTP client share one interpreter lock), so its own cost bounds the rate on any number
    of cores; the three together bound it on this machine's."""
    operator, plane, harness = ((a - b) * 1000 / n for a, b in zip(after, before, strict=True))
    cores = os.cpu_count() or 1
    busy = sum(a - b for a, b in zip(after, before, strict=True)) / (seconds * cores)
    return (
        f"CPU per operation: operator {operator:.1f} ms, control plane {plane:.1f} ms, harness {harness:.1f} ms "
        f"({busy:.0%} of {cores} cores busy); ceilings at these costs: the operator alone "
        f"{1000 / operator if operator else float('inf'):.0f} ops/s, all three on {cores} cores "
        f"{cores * 1000 / (operator + plane + harness):.0f} ops/s"
    )


# apiserver_request_total's verbs → the names the emulator's counters and the harness use
REAL_VERBS = {
    "POST": "create",
    "PATCH": "patch",
    "APPLY": "patch",
    "PUT": "update",
    "DELETE": "delete",
    "DELETECOLLECTION": "deletecollection",
    "GET": "get",
    "LIST": "list",
    "WATCH": "watch",
    "WATCHLIST": "watch",
}


def install_crds(kubeconfig: Path) -> None:
    """Create the dops CRDs and wait until the API server serves them (the emulator loads them with --crds)."""
    import yaml

    kube = KubeClient(load_config(kubeconfig), timeout=60)
    base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    names = []
    for path in sorted((REPO / "crds").glob("*.yaml")):
        for manifest in yaml.safe_load_all(path.read_text()):
            if manifest and manifest.get("kind") == "CustomResourceDefinition":
                kube.request("POST", base, body=manifest)
                names.append(manifest["metadata"]["name"])

    def established() -> bool:
        for name in names:
            crd = kube.request("GET", f"{base}/{name}")
            conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") != "True":
                return False
        return True

    wait(established, 60, "the dops CRDs to be established")
    kube.close()


OPERATOR_MAIN = """
import os, sys
from dops.handlers import run_operator
profile = os.environ.get("BENCH_PROFILE")
if profile:  # a sampling profiler over every thread (developer aid)
    sys.path.insert(0, os.path.dirname(profile))
    import sampler
    sampler.start(f"{profile}.{os.getpid()}.txt")
run_operator(all_namespaces=True, kubeconfig=sys.argv[1], verbose=bool(os.environ.get("BENCH_VERBOSE")))
"""


def start_operator(work: Path, kubeconfig: Path, metrics_port: int, concurrency: int) -> Proc:
    env = dict(
        os.environ,
        DOPS_RUN_STATE_LABEL=os.environ.get("DOPS_RUN_STATE_LABEL", "auto"),
        PYTHONPATH=str(REPO / "operator"),
        KUBECONFIG=str(kubeconfig),
        DOPS_LOG_ARCHIVE=str(work / "archive"),
        DOPS_METRICS_PORT=str(metrics_port),
        DOPS_HEALTH_PORT="0",
        DOPS_BIND_ADDRESS="127.0.0.1",
        DOPS_GLOBAL_MAX_CONCURRENT=str(concurrency),
        DOPS_JOB_TTL_SECONDS="600",
        DOPS_WORKER_EXIT_GRACE_SECONDS="2",  # simulated pods never exit: stop their Jobs soon after the result
    )
    return Proc([sys.executable, "-c", OPERATOR_MAIN, str(kubeconfig)], env, work / "operator.log")


def scrape(metrics_port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("dops_api_writes_total{"):
            key, value = line.rsplit(" ", 1)
            out[key[len("dops_api_writes_total") :]] = float(value)
    return out


# ===================================================================================== raw Jobs


def raw_job(name: str) -> JSON:
    """A bare Job whose one pod is simulated and ends at once: what the platform does without dops."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"bench": "raw"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"dops.emulator/simulate": "true", "dops.emulator/simulate-duration": "0"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
                },
            },
        },
    }


def raw_jobs_rate(kube: KubeClient, namespace: str, count: int, timeout: float) -> float:
    """Jobs/s from the first create of a burst of `count` bare Jobs to the last one `Complete` (seen on a watch)."""
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    complete: dict[str, float] = {}
    stop = threading.Event()
    listing = kube.request("GET", path, params={"limit": "1"})

    def watch() -> None:
        params = {"labelSelector": "bench=raw", "resourceVersion": listing["metadata"]["resourceVersion"]}
        for event in watch_lines(kube, path, params, stop):
            job = event["object"]
            if any(
                c.get("type") == "Complete" and c.get("status") == "True"
                for c in (job.get("status") or {}).get("conditions") or []
            ):
                complete.setdefault(job["metadata"]["name"], time.time())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.5)  # let the watch connect
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: kube.request("POST", path, body=raw_job(f"raw-{i}")), range(count)))
    wait(lambda: len(complete) >= count, timeout, f"{count} raw Jobs to complete ({len(complete)} so far)", 0.2)
    stop.set()
    rate = count / (max(complete.values()) - t0)
    # The bare Jobs leave with their pods, so that the operator's run starts on an empty namespace.
    kube.request("DELETE", path, params={"labelSelector": "bench=raw", "propagationPolicy": "Background"})
    return rate


# ===================================================================================== harness


class CountingClient(KubeClient):
    """The harness's API client: counts its own requests by (verb, resource)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        verb = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}.get(method, "get")
        parts = path.split("?")[0].strip("/").split("/")
        resource = parts[-1]
        if resource == "status":
            resource = f"{parts[-3]}/status"
        elif len(parts) >= 2 and parts[-2] in ("delegatedoperations", "jobs", "pods", "events", "namespaces"):
            resource = parts[-2]
        with self._lock:
            self.counts[(verb, resource)] += 1
        return super().request(method, path, **kwargs)


def watch_lines(kube: KubeClient, path: str, params: dict[str, str], stop: threading.Event) -> Iterator[JSON]:
    http = kube.config.http_client(timeout=3600)
    query = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "3600", **params}
    while not stop.is_set():
        try:
            with http.session.get(kube.config.server + path, params=query, stream=True, timeout=(10, 3700)) as response:
                for line in response.iter_lines():
                    if stop.is_set():
                        return
                    if not line:
                        continue
                    event: JSON = json.loads(line)
                    if event.get("type") == "BOOKMARK":
                        query["resourceVersion"] = event["object"]["metadata"]["resourceVersion"]
                        continue
                    if event.get("type") == "ERROR":
                        query.pop("resourceVersion", None)
                        continue
                    query["resourceVersion"] = event["object"]["metadata"]["resourceVersion"]
                    yield event
        except requests.RequestException:
            if stop.is_set():
                return  # the plane stopped under an open watch at the end of the run
            time.sleep(0.5)  # a dropped watch resumes from the last resourceVersion


class Harness:
    def __init__(self, kube: CountingClient, threads: int) -> None:
        self.kube = kube
        # The user's service (its creates carry the labels DOPS_RUN_STATE_LABEL says) and the worker's protocol,
        # which, as a Job's worker, writes only the status (the operator keeps any label mirror in step).
        self.service = DelegatedOperationService(
            DelegatedOperationRepository(kube), namespace=NAMESPACE, sync_labels=False
        )
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="harness")
        self.stop = threading.Event()
        self.claimed: set[str] = set()
        self.job_seen: dict[str, float] = {}  # job name → wall time its ADDED event arrived
        self.processed: dict[str, float] = {}  # op name → wall time it was seen processed
        self.completed: dict[str, JSON] = {}  # op name → final status
        self.queued_seen: dict[str, float] = {}  # op name → wall time `queued` was first seen
        self.label_lag: dict[str, float] = {}  # op name → longest time its run-state label disagreed with status
        self._disagree_since: dict[str, float] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.watchers: list[threading.Thread] = []

    def start_watches(self) -> None:
        for target, path, params in (
            (
                self._pods,
                f"/api/v1/namespaces/{NAMESPACE}/pods",
                {"labelSelector": "app.kubernetes.io/managed-by=dops"},
            ),
            (
                self._jobs,
                f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
                {"labelSelector": "app.kubernetes.io/managed-by=dops"},
            ),
            (self._ops, f"/apis/dops.io/v1alpha1/namespaces/{NAMESPACE}/delegatedoperations", {}),
        ):
            thread = threading.Thread(target=target, args=(path, params), daemon=True)
            thread.start()
            self.watchers.append(thread)

    def _pods(self, path: str, params: dict[str, str]) -> None:
        for event in watch_lines(self.kube, path, params, self.stop):
            pod = event["object"]
            if (pod.get("status") or {}).get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
                continue
            ref = (pod["metadata"].get("annotations") or {}).get("dops.io/operation")
            name = pod["metadata"]["name"]
            if not ref:
                continue
            with self._lock:
                if name in self.claimed:
                    continue
                self.claimed.add(name)
            self.pool.submit(self.play_worker, ref, name)

    def _jobs(self, path: str, params: dict[str, str]) -> None:
        for event in watch_lines(self.kube, path, params, self.stop):
            if event["type"] == "ADDED":
                self.job_seen.setdefault(event["object"]["metadata"]["name"], time.time())

    def _ops(self, path: str, params: dict[str, str]) -> None:
        for event in watch_lines(self.kube, path, params, self.stop):
            obj = event["object"]
            status = obj.get("status") or {}
            self._track_label(obj, status, time.time())
            if status.get("runState") in ("completed", "failed") and any(
                c.get("type") == "Succeeded" and c.get("status") in ("True", "False")
                for c in status.get("conditions") or []
            ):
                name = obj["metadata"]["name"]
                if name not in self.processed:
                    self.processed[name] = time.time()
                    self.completed[name] = status

    def _track_label(self, obj: JSON, status: JSON, now: float) -> None:
        """First `queued` sighting, and how long the run-state label disagrees with the status (a missing
        label disagrees only when some label was ever written for the operation)."""
        name = obj["metadata"]["name"]
        state = status.get("runState")
        if state == "queued":
            self.queued_seen.setdefault(name, now)
        if not state or obj["metadata"].get("deletionTimestamp"):
            return
        label = (obj["metadata"].get("labels") or {}).get("dops.io/run-state")
        if label is None and name not in self.label_lag:
            return  # no label mirror for this operation (written by nobody): nothing can lag
        self.label_lag.setdefault(name, 0.0)
        if label != state:
            self._disagree_since.setdefault(name, now)
        elif name in self._disagree_since:
            lag = now - self._disagree_since.pop(name)
            self.label_lag[name] = max(self.label_lag[name], lag)

    def open_label_lags(self, now: float) -> list[float]:
        """Disagreements not over yet (counted up to `now`)."""
        return [now - since for since in self._disagree_since.values()]

    def first_sight(self, count: int, interval: float) -> list[float]:
        """`count` kubectl-apply-style creates (no status) at idle, `interval` s apart: created → queued (s)."""
        path = f"/apis/dops.io/v1alpha1/namespaces/{NAMESPACE}/delegatedoperations"
        sent: dict[str, float] = {}
        for i in range(count):
            name = f"first-sight-{i}"
            body = {
                "apiVersion": "dops.io/v1alpha1",
                "kind": "DelegatedOperation",
                "metadata": {"name": name},
                "spec": {"operator": "@dops/examples/echo", "delegationTarget": EXTERNAL_TARGET},
            }
            sent[name] = time.time()
            self.kube.request("POST", path, body=body)
            time.sleep(interval)
        wait(lambda: all(n in self.queued_seen for n in sent), 60, "the first-sight probes to be queued", 0.05)
        return [self.queued_seen[n] - t for n, t in sent.items()]

    def play_worker(self, ref: str, pod: str) -> None:
        """The worker's protocol, through the dops service (as dops.worker.run does)."""
        try:
            link = f"{self.kube.config.server}/api/v1/namespaces/{NAMESPACE}/pods/{pod}/log?container=worker"
            doc = self.service.set_running(ref, run_link=link, required_state="scheduled", pod_name=pod)
            if doc is None:
                self.errors.append(f"claim of {ref} by {pod} lost")
                return
            # The worker's own reporter at the target's interval: the first report is written at once, the rest
            # coalesce, and the newest value not yet written rides in the completion (as dops.worker.run does).
            reporter = ProgressReporter(lambda p: self.service.set_progress(ref, p), DEFAULT_PROGRESS_INTERVAL_SECONDS)
            for step in (1, 2, 3):
                reporter.report(ExecutionProgress(progress=step / 3, label=f"step {step}/3"))
            pending = reporter.close()
            done = self.service.set_completed(ref, result={"steps": 3}, progress=pending, required_state="running")
            if done is None:
                self.errors.append(f"completion of {ref} lost")
        except Exception as exc:  # reported at the end
            self.errors.append(f"{ref}: {exc!r}")

    def submit(self, count: int) -> list[str]:
        def one(i: int) -> str:
            doc = self.service.queue_operation(
                "@dops/examples/echo",
                label=f"bench {i}",
                delegation_target=TARGET,
                context={"request_params": {"params": {"i": i}}},
            )
            assert doc.id is not None
            return doc.id

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, range(count)))

    def close(self) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)


# ===================================================================================== measurements


def seconds(a: str | None, b: str | None) -> float | None:
    start, end = parse_time(a), parse_time(b)
    return (end - start).total_seconds() if start and end else None


def line(label: str, values: list[float]) -> str:
    p50, p99 = pct(values, 0.5) * 1000, pct(values, 0.99) * 1000
    return f"  {label:<28} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   (n={len(values)})"


def per_op(delta: dict[str, dict[str, int]], n: int) -> list[str]:
    rows = []
    for resource, verbs in sorted(delta.items()):
        for verb, count in sorted(verbs.items()):
            if count:
                rows.append(f"    {verb:<7} {resource:<34} {count / n:6.2f}")
    return rows


def stats_delta(before: JSON, after: JSON) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for resource, verbs in after["requests"].items():
        for verb, count in verbs.items():
            diff = count - before["requests"].get(resource, {}).get(verb, 0)
            if diff:
                out.setdefault(resource, {})[verb] = diff
    return out


def minus(total: dict[str, dict[str, int]], mine: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for resource, verbs in total.items():
        for verb, count in verbs.items():
            rest = count - mine.get((verb, resource), 0)
            if rest:
                out.setdefault(resource, {})[verb] = rest
    return out


def store_finished(kube: KubeClient, count: int) -> None:
    """`count` finished operations, stored as the operator leaves them (completed and processed)."""
    repo = DelegatedOperationRepository(kube)
    service = DelegatedOperationService(repo, namespace=NAMESPACE, sync_labels=False)
    stamp = format_time(utcnow())

    def one(i: int) -> None:
        doc = service.queue_operation(
            "@dops/examples/echo", label=f"stored {i}", context={"request_params": {"params": {}}}
        )
        assert doc.id is not None
        condition = {"status": "True", "reason": "Completed", "message": "stored", "lastTransitionTime": stamp}
        repo.patch_status(
            NAMESPACE,
            doc.id,
            {
                "status": {
                    "runState": "completed",
                    "completedAt": stamp,
                    "updatedAt": stamp,
                    "result": {"result": {"i": i}},
                    "conditions": [
                        {"type": "Succeeded", **condition},
                        {"type": "Running", **condition, "status": "False"},
                    ],
                }
            },
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(count)))


def measure_restart(
    kube: KubeClient,
    harness: Harness,
    work: Path,
    kubeconfig: Path,
    metrics_port: int,
    args: argparse.Namespace,
    *,
    stored_now: int,
) -> tuple[Proc, float, float, float]:
    """Store finished operations up to `args.stored`, restart the operator: (operator, s to first admission, RSS
    with them all stored before the restart, RSS after it). The operator must be stopped by the caller first;
    its RSS before the restart is measured by a fresh one that has listed everything."""
    extra = max(0, args.stored - stored_now)
    print(f"\nstoring {extra} more finished operations ({args.stored} in all) ...", flush=True)
    t_store = time.time()
    store_finished(kube, extra)
    print(f"  stored in {time.time() - t_store:.1f} s")
    operator = start_operator(work, kubeconfig, metrics_port, args.concurrency)
    wait(lambda: _ok(f"http://127.0.0.1:{metrics_port}/metrics"), 120, "the operator's metrics endpoint")
    time.sleep(5.0)
    rss_stored = operator.rss_mib()
    operator.stop()
    probe_doc = harness.service.queue_operation(
        "@dops/examples/echo",
        label="restart probe",
        delegation_target=TARGET,
        context={"request_params": {"params": {}}},
    )
    assert probe_doc.id is not None
    probe = probe_doc.id
    restart_at = time.time()
    operator = start_operator(work, kubeconfig, metrics_port, args.concurrency)

    def admitted() -> bool:
        status = harness.service.repo.get(NAMESPACE, probe).get("status") or {}
        return status.get("runState") in ("scheduled", "running", "completed")

    wait(admitted, 300, "the first admission after the restart", interval=0.05)
    first_admission = time.time() - restart_at
    time.sleep(5.0)
    return operator, first_admission, rss_stored, operator.rss_mib()


def service_account_exists(kube: KubeClient) -> bool:
    try:
        kube.request("GET", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default")
    except Exception:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--stored", type=int, default=10_000, help="stored finished operations for the restart test")
    parser.add_argument(
        "--concurrency", type=int, default=100, help="maxConcurrent of the benchmark target and global cap"
    )
    parser.add_argument("--harness-threads", type=int, default=24)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--plane", choices=("embedded", "real"), default="embedded", help="which control plane to measure on"
    )
    parser.add_argument("--raw-jobs", type=int, default=500, help="bare Jobs for the raw-Job rate (0: skip)")
    parser.add_argument(
        "--controller-qps",
        type=int,
        default=None,
        help="--plane real: kube-controller-manager's --kube-api-qps (burst twice that); default: upstream's 20",
    )
    parser.add_argument(
        "--run-state-label",
        choices=("auto", "always", "never"),
        default="auto",
        help="DOPS_RUN_STATE_LABEL of the operator and the harness's service (auto: no label where the server "
        "selects by status.runState)",
    )
    parser.add_argument("--first-sight", type=int, default=50, help="kubectl-style creates timed at idle (0: skip)")
    args = parser.parse_args()
    os.environ["DOPS_RUN_STATE_LABEL"] = args.run_state_label  # the operator's and the harness's service
    stop_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="dops-bench-operator-"))
    plane: EmbeddedBench | RealBench = (
        EmbeddedBench(work) if args.plane == "embedded" else RealBench(work, args.controller_qps)
    )
    kubeconfig = plane.kubeconfig
    metrics_port = free_port()
    operator: Proc | None = None
    harness: Harness | None = None
    failed = False
    try:
        kube = CountingClient(load_config(kubeconfig), timeout=60)
        kube.request(
            "POST",
            "/api/v1/namespaces",
            body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        )
        # Worker pods run as dops-worker, the account the chart prepares in each namespace it serves; bare Jobs
        # as `default`, which the real plane's ServiceAccount controller makes shortly after the namespace.
        kube.request(
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
            body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "dops-worker"}},
        )
        if plane.name == "real":  # the emulator runs no ServiceAccount controller and no admission that needs one
            wait(lambda: service_account_exists(kube), 60, f"the default ServiceAccount of {NAMESPACE}", 0.2)
        raw_rate = None
        if args.raw_jobs > 0:
            print(f"raw Jobs on the {plane.name} plane: {args.raw_jobs} in one burst ...", flush=True)
            raw_rate = raw_jobs_rate(kube, NAMESPACE, args.raw_jobs, args.timeout)
            print(f"raw Jobs: {raw_rate:.1f} Jobs/s (create → Complete, simulated pods)", flush=True)
        simulated = {"dops.emulator/simulate": "true", "dops.emulator/simulate-duration": "86400"}
        create_target(
            kube, NAMESPACE, TARGET, {"maxConcurrent": args.concurrency, "podTemplate": {"annotations": simulated}}
        )
        create_target(kube, NAMESPACE, EXTERNAL_TARGET, {"mode": "external"})
        operator = start_operator(work, kubeconfig, metrics_port, args.concurrency)
        wait(lambda: _ok(f"http://127.0.0.1:{metrics_port}/metrics"), 60, "the operator's metrics endpoint")
        harness = Harness(kube, args.harness_threads)
        harness.start_watches()
        time.sleep(1.0)  # let the watches connect
        first_sight: list[float] = []
        if args.first_sight > 0:
            print(f"first sight: {args.first_sight} kubectl-style creates at idle, 100 ms apart ...", flush=True)
            first_sight = harness.first_sight(args.first_sight, 0.1)
            time.sleep(1.0)  # their label writes (if any) land before the counters are read
        before = plane.counters()
        writes_before = scrape(metrics_port)  # the operator's own count, over the same window as the plane's
        kube.counts.clear()
        peak_rss = operator.rss_mib()
        cpu_before = (operator.cpu_seconds(), plane.cpu_seconds(operator.pid), time.process_time())
        print(f"submitting {args.ops} operations (target maxConcurrent {args.concurrency}) ...", flush=True)
        t0 = time.time()
        names = harness.submit(args.ops)
        submitted = time.time() - t0
        deadline = time.monotonic() + args.timeout
        while len([n for n in names if n in harness.processed]) < len(names):
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {len(harness.processed)}/{len(names)} processed")
            peak_rss = max(peak_rss, operator.rss_mib())
            time.sleep(0.2)
        t_end = max(harness.processed[n] for n in names)
        cpu_after = (operator.cpu_seconds(), plane.cpu_seconds(operator.pid), time.process_time())
        time.sleep(3.0)  # the operator stops the lingering simulated Jobs (exit grace) before we count
        lags = [*harness.label_lag.values(), *harness.open_label_lags(time.time())]
        after = plane.counters()
        peak_rss = max(peak_rss, operator.rss_mib())
        total = stats_delta(before, after)
        operator_requests = minus(total, kube.counts)
        writes = {key: value - writes_before.get(key, 0.0) for key, value in scrape(metrics_port).items()}
        n = len(names)

        # latencies
        ops_body = kube.request("GET", f"/apis/dops.io/v1alpha1/namespaces/{NAMESPACE}/delegatedoperations")
        by_name = {o["metadata"]["name"]: o for o in ops_body["items"]}
        to_scheduled, to_job, to_terminal, to_processed = [], [], [], []
        first_wave: list[tuple[str, float]] = []
        states: Counter[str | None] = Counter()
        logs: Counter[str] = Counter()
        for name in names:
            status = by_name[name].get("status") or {}
            states[status.get("runState")] += 1
            logs[
                "archived" if status.get("logPath") else "upload error" if status.get("logUploadError") else "none"
            ] += 1
            if (v := seconds(status.get("queuedAt"), status.get("scheduledAt"))) is not None:
                to_scheduled.append(v)
                first_wave.append((str(status.get("queuedAt")), v))
            if (v := seconds(status.get("queuedAt"), status.get("completedAt"))) is not None:
                to_terminal.append(v)
            queued = parse_time(status.get("queuedAt"))
            scheduled = parse_time(status.get("scheduledAt"))
            job_at = harness.job_seen.get(status.get("jobName", ""))
            if scheduled is not None and job_at is not None:
                to_job.append(job_at - scheduled.timestamp())
            if queued is not None and name in harness.processed:
                to_processed.append(harness.processed[name] - queued.timestamp())
        operator_writes = sum(
            count
            for resource, verbs in operator_requests.items()
            for verb, count in verbs.items()
            if verb in ("create", "patch", "update", "delete", "deletecollection") and resource in OBJECT_RESOURCES
        )
        operator_events = sum(
            count for verb, count in operator_requests.get("events", {}).items() if verb in ("create", "patch")
        )
        rate = n / (t_end - t0)
        # The last progress report must have reached the status, written or carried by the completion.
        harness.errors += [
            f"{name}: final progress {status.get('progress')!r}, not step 3/3"
            for name, status in harness.completed.items()
            if (status.get("progress") or {}).get("label") != "step 3/3"
        ]
        run_errors = list(harness.errors)
        print(
            f"\n{n} operations: {dict(states)}; logs: {dict(logs)}; submit took {submitted:.1f} s; "
            f"harness errors: {len(harness.errors)}"
        )
        for error in harness.errors[:5]:
            print("  harness:", error)
        print(
            f"end to end on the {plane.name} plane: {rate:.1f} operations/s "
            f"(first create → last processed: {t_end - t0:.1f} s)"
        )
        if raw_rate is not None:
            print(
                f"  beside raw Jobs on the same plane: {raw_rate:.1f} Jobs/s → dops/raw ratio {rate / raw_rate:.2f} "
                f"(target ≥ {FLOOR_RAW_RATIO})"
            )
        print("latency:")
        print(line("create → scheduled", to_scheduled))
        first = [latency for _, latency in sorted(first_wave)[: args.concurrency]]
        print(line(f"  first {len(first)} (free slots)", first))
        print(line("scheduled → Job created", to_job))
        print(line("create → terminal", to_terminal))
        print(line("create → processed", to_processed))
        print(f"API requests per operation ({plane.name} plane's counters):")
        print("  harness (service + worker protocol):")
        harness_rows: dict[str, dict[str, int]] = {}
        for (verb, resource), count in kube.counts.items():
            harness_rows.setdefault(resource, {})[verb] = count
        print("\n".join(per_op(harness_rows, n)))
        if plane.name == "embedded":
            print("  operator (total minus harness; the emulator's controllers write in-process, uncounted):")
        else:
            print("  everyone else (the operator, kube-controller-manager, kube-scheduler, the node agent):")
        print("\n".join(per_op(operator_requests, n)))
        self_count = sum(v for k, v in writes.items() if 'resource="events"' not in k)
        self_events = sum(v for k, v in writes.items() if 'resource="events"' in k)
        if plane.name == "embedded":
            print(
                f"  operator writes per operation (operations, labels, Jobs): {operator_writes / n:.2f} "
                f"(target ≤ {FLOOR_WRITES_PER_OP:.0f}); Events, not counted: {operator_events / n:.2f} "
                "(at most one per transition)"
            )
        else:
            operator_writes = int(self_count)  # the API server cannot tell the operator's requests apart
            operator_events = int(self_events)
        print(
            f"  operator writes per operation as it counts them (dops_api_writes_total): {self_count / n:.2f} "
            f"+ {self_events / n:.2f} Events"
        )
        for key, written in sorted(writes.items()):
            if written:
                print(f"    {key:<60} {written / n:6.2f}")
        print(
            f"  stored writes per operation ({'resourceVersion' if plane.name == 'embedded' else 'etcd revision'} "
            f"delta, every writer): {(after['resourceVersion'] - before['resourceVersion']) / n:.1f}"
        )
        print(f"operator RSS: peak {peak_rss:.0f} MiB during the run")
        print(cpu_line(cpu_before, cpu_after, n, t_end - t0))
        fs50, fs99 = pct(first_sight, 0.5) * 1000, pct(first_sight, 0.99) * 1000
        print(
            f"first sight at idle (kubectl-style create → queued on a watch, n={len(first_sight)}): "
            f"p50 {fs50:.0f} ms (target ≤ {FLOOR_FIRST_SIGHT_P50_MS:.0f}), "
            f"p99 {fs99:.0f} ms (target ≤ {FLOOR_FIRST_SIGHT_P99_MS:.0f})"
        )
        lag_max = max(lags, default=0.0) * 1000
        print(
            f"run-state label (DOPS_RUN_STATE_LABEL={args.run_state_label}): "
            + (
                f"kept on {len(lags)} operations; longest disagreement with status {lag_max:.0f} ms, "
                f"p99 {pct(lags, 0.99) * 1000:.0f} ms (target ≤ {FLOOR_LABEL_LAG_MS:.0f})"
                if lags
                else "written on no operation (field selectors on status.runState do its job): no lag"
            )
        )

        # restart with 10,000 stored finished operations
        rss_10k = rss_restart = 0.0
        if args.stored > 0:
            operator.stop()
            operator = None
            restarted, first_admission, rss_10k, rss_restart = measure_restart(
                kube, harness, work, kubeconfig, metrics_port, args, stored_now=len(by_name)
            )
            operator = restarted
            print(f"restart with {args.stored} stored operations: first admission after {first_admission:.2f} s")
            print(
                f"operator RSS at {args.stored} operations: {max(rss_10k, rss_restart):.0f} MiB "
                f"(before restart {rss_10k:.0f}, after {rss_restart:.0f})"
            )

        verdicts = [
            (rate >= FLOOR_OPS_PER_SECOND, f"operations/s {rate:.1f} ≥ {FLOOR_OPS_PER_SECOND:.0f}"),
            (
                raw_rate is None or rate / raw_rate >= FLOOR_RAW_RATIO,
                f"dops/raw-Job ratio {rate / raw_rate if raw_rate else float('nan'):.2f} ≥ {FLOOR_RAW_RATIO}",
            ),
            (
                operator_writes / n <= FLOOR_WRITES_PER_OP,
                f"operator writes/op {operator_writes / n:.3f} ≤ {FLOOR_WRITES_PER_OP:.0f} "
                f"({operator_writes} for {n} operations; + {operator_events / n:.2f} Events, not counted)",
            ),
            (
                not first_sight or (fs50 <= FLOOR_FIRST_SIGHT_P50_MS and fs99 <= FLOOR_FIRST_SIGHT_P99_MS),
                f"first sight p50 {fs50:.0f} ms ≤ {FLOOR_FIRST_SIGHT_P50_MS:.0f}, "
                f"p99 {fs99:.0f} ms ≤ {FLOOR_FIRST_SIGHT_P99_MS:.0f}",
            ),
            (lag_max <= FLOOR_LABEL_LAG_MS, f"run-state label lag {lag_max:.0f} ms ≤ {FLOOR_LABEL_LAG_MS:.0f}"),
            (
                max(rss_10k, rss_restart, peak_rss) <= FLOOR_RSS_MIB,
                f"operator RSS {max(rss_10k, rss_restart, peak_rss):.0f} MiB ≤ {FLOOR_RSS_MIB:.0f}",
            ),
            (states.get("completed", 0) == n and not run_errors, "every operation completed, no harness error"),
        ]
        if plane.name != "embedded":
            # The floors are the embedded plane's: on the real one only completeness is judged, the rest is printed.
            verdicts = verdicts[-1:]
        judged = "\ntargets:" if plane.name == "embedded" else "\ntargets (the real plane's speed is printed only):"
        print(judged)
        for ok, text in verdicts:
            print(f"  {'ok  ' if ok else 'FAIL'} {text}")
            failed = failed or not ok
    finally:
        if harness is not None:
            harness.close()
        if operator is not None:
            operator.stop()
        plane.stop()
        print(f"logs: {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    _ = JSON_TYPE
    raise SystemExit(main())
