"""Benchmark of dops at scale (issue 15): large objects, 100,000 stored operations, worker start-up.

The embedded control plane runs in this process (`EmbeddedServer.run_in_thread`, no controllers) because two
of the measurements need its store: the bytes each revision of an operation stores, and the bulk path that
seeds 100,000 operations. Seeding through the API (a create and a status patch each) would take the better
part of an hour on two cores, so the operations are written straight into the emulator's store: clones of an
operation created and finished through the API (its stored form, labels and all), each with its own name, uid
and resourceVersion, published to watchers like any write. The operator (`dops.handlers.run_operator`) runs as
its own process, so its RSS is its own; kubectl is the fetched one (`scripts/fetch_clients.py`).

Printed, each figure beside its target:
1. Large objects: bytes per operation on the worker's happy path (create, claim, 3 progress writes, completed)
   with an empty context and with a 50 KiB one: bytes sent to the API server, bytes it answered, and bytes
   stored (every revision's JSON, as etcd keeps each revision of the whole object); and the context's share.
2. Scale, with `--stored` operations (default 100,000; `--running` of them running, default 1,000, on a
   `mode: external` target, the rest completed): `list_operations` (a page of 50, state filter) and `count`
   (state filter) p50/p99 (≤ 150 ms), `kubectl get dops` first page (≤ 1 s), the operator's RSS with them all
   (≤ 300 MiB, once its cache holds every operation) and its restart to first admission (≤ 5 s), and how long
   its cache takes to hold every operation (the finished ones come through Kopf's listing, after admissions
   start). Printed beside them, not judged: the unfiltered
   first page and `count` of the state most operations are in (which lists every match: Kubernetes has no count).
3. Worker start-up: the import time of the worker's modules (`python -X importtime`: `dops.worker.run`, all
   that the Job container's `dops worker run NS/NAME` imports, beside the whole CLI's) and the time from process
   start to the claim write (`python -m dops worker run NS/NAME` of a `scheduled` operation, the Job container's
   command line and claim, run by hand; median of 3).

Usage: python scripts/bench_scale.py [--stored 100000] [--running 1000] [--repeat 30]
       [--skip large,scale,worker,kubectl,operator]   (large,worker,kubectl,operator: only list_operations and count)
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "scripts"))

from bench_support import (  # noqa: E402
    JSON,
    create_namespace,
    create_target,
    free_port,
    kubectl_binary,
    pct,
    start_operator,
    stop_on_sigterm,
    url_ok,
    verdict,
    wait,
)

from dops import DelegatedOperationPagingParams, DelegatedOperationService  # noqa: E402
from dops.api.types import ExecutionProgress  # noqa: E402
from dops.domain import names  # noqa: E402
from dops.emulator import EmbeddedServer, ServerSettings  # noqa: E402
from dops.emulator.bootstrap import apply_manifest_paths  # noqa: E402
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config  # noqa: E402

OPS = ("dops.io", "delegatedoperations")
TARGET_LIST_MS = 150.0
TARGET_KUBECTL_S = 1.0
TARGET_RSS_MIB = 300.0
TARGET_RESTART_S = 5.0
RUNNING_FENCE = [{"op": "test", "path": "/status/runState", "value": "running"}]


class ByteCountingClient(KubeClient):
    """Counts the JSON bytes this client sends and receives (request bodies and decoded responses)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = 0
        self.received = 0
        self.writes = 0
        self._lock = threading.Lock()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        body = kwargs.get("body")
        out = super().request(method, path, **kwargs)
        with self._lock:
            if body is not None:
                self.sent += len(json.dumps(body, separators=(",", ":")))
            if method in ("POST", "PATCH", "PUT"):
                self.writes += 1
            if out is not None:
                self.received += len(json.dumps(out, separators=(",", ":")))
        return out

    def reset(self) -> None:
        with self._lock:
            self.sent = self.received = self.writes = 0


def namespace_and_target(kube: KubeClient, namespace: str, target: str, mode: str) -> None:
    create_namespace(kube, namespace)
    create_target(kube, namespace, target, {"mode": mode, "maxConcurrent": 1000})


# ================================================================================ 1. large objects


def large_objects(server: EmbeddedServer, kubeconfig: Path) -> None:
    print("\n== large objects: bytes per operation, worker's happy path ==", flush=True)
    kube = ByteCountingClient(load_config(kubeconfig))
    namespace_and_target(kube, "bench-large", "ext", "external")
    service = DelegatedOperationService(DelegatedOperationRepository(kube), namespace="bench-large", sync_labels=False)
    stored: dict[str, int] = {}
    revisions: dict[str, int] = {}

    def on_event(event: Any) -> None:  # called on the server's loop for every stored write
        if event.resource == OPS and event.type != "DELETED":
            name = event.obj["metadata"]["name"]
            stored[name] = stored.get(name, 0) + len(event.encoded_object())
            revisions[name] = revisions.get(name, 0) + 1

    server.call(lambda: server.api.store.listeners.append(on_event))
    rows: dict[int, tuple[float, float, float, float, float]] = {}
    try:
        for size in (0, 50 * 1024):
            blob = "x" * size
            samples = []
            for _ in range(5):
                kube.reset()
                doc = service.queue_operation(
                    "@dops/examples/echo",
                    delegation_target="ext",
                    context={"request_params": {"params": {"message": "hi", "blob": blob}}},
                )
                assert doc.id is not None
                service.set_running(doc.id, required_state="queued")
                for step in (0.25, 0.5, 0.75):
                    service.set_progress(doc.id, ExecutionProgress(step, f"{step:.0%}"), fence=RUNNING_FENCE)
                service.set_completed(doc.id, result={"ok": True}, required_state="running")
                samples.append((kube.sent, kube.received, stored[doc.id], revisions[doc.id], kube.writes))
            rows[size] = tuple(statistics.median(s[i] for s in samples) for i in range(5))  # type: ignore[assignment]
    finally:
        server.call(lambda: server.api.store.listeners.remove(on_event))
        kube.close()
    for size, (sent, received, kept, revs, writes) in rows.items():
        what = "50 KiB context" if size else "empty context"
        print(
            f"  {what:15}: {writes:.0f} writes, {revs:.0f} stored revisions; sent {sent / 1024:7.1f} KiB, "
            f"answered {received / 1024:7.1f} KiB, stored {kept / 1024:7.1f} KiB per operation"
        )
    (s0, r0, k0, revs, _), (s1, r1, k1, _, _) = rows[0], rows[50 * 1024]
    print(
        f"  the 50 KiB context costs: sent +{(s1 - s0) / 1024:.1f} KiB (once: the create; status patches never resend"
        f" spec), answered +{(r1 - r0) / 1024:.1f} KiB, stored +{(k1 - k0) / 1024:.1f} KiB"
        f" (= {(k1 - k0) / 50 / 1024:.1f} × 50 KiB: every revision of the whole object, {revs:.0f} revisions);"
        " each watcher receives every revision too"
    )


# ================================================================================ 2. scale


def seed(server: EmbeddedServer, template: JSON, count: int, start: dt.datetime, batch: int = 5000) -> None:
    """`count` clones of the stored `template`, written straight into the emulator's store (the bulk path)."""
    encoded = json.dumps(template)
    operator = str(template["spec"].get("operator") or "")
    done = 0
    while done < count:
        n = min(batch, count - done)

        def write(first: int = done, n: int = n) -> None:
            store = server.api.store
            for i in range(first, first + n):
                obj = json.loads(encoded)
                meta = obj["metadata"]
                meta["name"] = names.new_operation_name(operator, start - dt.timedelta(seconds=i), os.urandom(4))
                meta["uid"] = str(uuid.uuid4())
                meta["resourceVersion"] = str(store.next_rv())
                store.put(OPS, obj, None)

        server.call(write)
        done += n


def stored_template(server: EmbeddedServer, namespace: str, name: str) -> JSON:
    obj = server.call(lambda: server.api.store.get(OPS, namespace, name))
    return copy.deepcopy(obj)


def timed_ms(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()  # warm up
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def scale(server: EmbeddedServer, kubeconfig: Path, work: Path, args: argparse.Namespace) -> None:
    ns = "bench-scale"
    print(f"\n== scale: {args.stored} stored operations, {args.running} running ==", flush=True)
    kube = KubeClient(load_config(kubeconfig), timeout=120)
    namespace_and_target(kube, ns, "ext", "external")
    kube.request(
        "POST",
        f"/apis/dops.io/v1alpha1/namespaces/{ns}/delegationtargets",
        body={"apiVersion": "dops.io/v1alpha1", "kind": "DelegationTarget", "metadata": {"name": "jobs"}, "spec": {}},
    )
    kube.request(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "dops-worker"}},
    )
    service = DelegatedOperationService(DelegatedOperationRepository(kube), namespace=ns)
    params = {"request_params": {"params": {"message": "stored"}}}
    done = service.queue_operation("@dops/examples/echo", delegation_target="ext", context=params)
    running = service.queue_operation("@dops/examples/echo", delegation_target="ext", context=params)
    assert done.id is not None and running.id is not None
    service.set_running(done.id, required_state="queued")
    completed = service.set_completed(done.id, result={"ok": True}, required_state="running")
    assert completed is not None
    stamp = service.repo.get(ns, done.id)["status"]["completedAt"]
    processed = {"status": "True", "reason": "Completed", "message": "stored", "lastTransitionTime": stamp}
    service.repo.patch_status(  # as the operator leaves a finished operation: processed (its conditions written)
        ns,
        done.id,
        {
            "status": {
                "conditions": [{"type": "Succeeded", **processed}, {"type": "Running", **processed, "status": "False"}]
            }
        },
    )
    service.set_running(running.id, required_state="queued")
    t0 = time.monotonic()
    # Names sort newest first (dops' time-sortable names); the running operations are the newest, as they would be.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    seed(server, stored_template(server, ns, done.id), args.stored - args.running - 1, start)
    seed(server, stored_template(server, ns, running.id), args.running - 1, start + dt.timedelta(hours=12))
    total = server.call(lambda: server.api.store.count(OPS))
    print(f"  seeded {total} operations straight into the emulator's store in {time.monotonic() - t0:.1f} s")

    paging = DelegatedOperationPagingParams(limit=50)
    listing = timed_ms(lambda: service.list_operations(run_state="running", paging=paging), args.repeat)
    counting = timed_ms(lambda: service.count(filters={"run_state": "running"}), args.repeat)
    n_running = service.count(filters={"run_state": "running"})
    for what, samples in (
        ("list_operations (running, page of 50)", listing),
        (f"count (running: {n_running})", counting),
    ):
        p99 = pct(samples, 0.99)
        print(
            f"  {what}: p50 {statistics.median(samples):.0f} ms, p99 {p99:.0f} ms"
            f" (target p99 ≤ {TARGET_LIST_MS:.0f} ms: {verdict(p99 <= TARGET_LIST_MS)})"
        )
    # Printed, not judged: the unfiltered first page (FiftyOne's default listing) and a count that must read most
    # objects (Kubernetes has no count: a selector's matches are listed, here as Table rows without objects).
    unfiltered = timed_ms(lambda: service.list_operations(paging=paging), max(3, args.repeat // 3))
    print(
        f"  list_operations (no filter, page of 50): p50 {statistics.median(unfiltered):.0f} ms,"
        f" p99 {pct(unfiltered, 0.99):.0f} ms (printed)"
    )
    n_done = service.count(filters={"run_state": "completed"})
    most = timed_ms(lambda: service.count(filters={"run_state": "completed"}), 3)
    print(f"  count (completed: {n_done}): median {statistics.median(most):.0f} ms (printed: reads every match)")

    kubectl = kubectl_binary()
    if "kubectl" in args.skip_parts:
        print("  kubectl get dops: skipped (--skip kubectl)")
    elif kubectl is None:
        print("  kubectl get dops: skipped (no kubectl: run scripts/fetch_clients.py)")
    else:
        first, whole = kubectl_first_page(kubectl, kubeconfig, ns)
        print(
            f"  kubectl get dops first page (500 rows): {first:.2f} s (target ≤ {TARGET_KUBECTL_S:.0f} s:"
            f" {verdict(first <= TARGET_KUBECTL_S)}); the whole table ({total} rows): {whole:.1f} s"
        )

    if "operator" in args.skip_parts:
        kube.close()
        return
    metrics_port = free_port()
    # External operations that run count against the global cap of active operations (DOPS_GLOBAL_MAX_CONCURRENT,
    # default 100): with 1,000 of them running nothing else would be admitted, so the benchmark lifts the cap.
    uncapped = {"DOPS_GLOBAL_MAX_CONCURRENT": "0"}
    operator = start_operator(work, kubeconfig, metrics_port, **uncapped)
    try:
        t_start = time.monotonic()
        wait(lambda: url_ok(f"http://127.0.0.1:{metrics_port}/metrics"), 600, "the operator's metrics endpoint")
        probe = service.queue_operation("@dops/examples/echo", delegation_target="jobs", context=params)
        assert probe.id is not None
        wait(lambda: admitted(service, probe.id), 600, "the operator's first admission", 0.05)  # type: ignore[arg-type]
        cold = time.monotonic() - t_start
        # The start-up listing holds only the unfinished operations; the finished ones arrive through Kopf's own
        # listing after the first admission. RSS counts once the operator knows them all (its dops_operations).
        wait(lambda: known(metrics_port) >= total, 900, "the operator to know every operation", 2.0)
        cached_cold = time.monotonic() - t_start
        time.sleep(5.0)
        rss = operator.rss_mib()
        operator.stop()
        probe2 = service.queue_operation("@dops/examples/echo", delegation_target="jobs", context=params)
        assert probe2.id is not None
        t_restart = time.monotonic()
        operator = start_operator(work, kubeconfig, metrics_port, **uncapped)
        wait(lambda: admitted(service, probe2.id), 600, "the first admission after the restart", 0.05)  # type: ignore[arg-type]
        restart = time.monotonic() - t_restart
        wait(lambda: known(metrics_port) >= total, 900, "the restarted operator to know every operation", 2.0)
        cached_restart = time.monotonic() - t_restart
        time.sleep(5.0)
        rss_after = max(rss, operator.rss_mib())
    finally:
        operator.stop()
        kube.close()
    print(
        f"  operator RSS with them all: {rss_after:.0f} MiB (target ≤ {TARGET_RSS_MIB:.0f} MiB:"
        f" {verdict(rss_after <= TARGET_RSS_MIB)})"
    )
    print(
        f"  operator restart to first admission: {restart:.2f} s (target ≤ {TARGET_RESTART_S:.0f} s:"
        f" {verdict(restart <= TARGET_RESTART_S)}); cold start to first admission {cold:.2f} s"
    )
    print(
        f"  every operation in the operator's cache (through Kopf's own listing, admissions running meanwhile):"
        f" {cached_restart:.1f} s after the restart, {cached_cold:.1f} s after the cold start"
    )


def known(metrics_port: int) -> float:
    """How many operations the operator's cache holds (the sum of its `dops_operations` gauge; 0 if unreadable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("dops_operations{"))


def admitted(service: DelegatedOperationService, name: str) -> bool:
    status = service.repo.get(service.namespace, name).get("status") or {}
    return status.get("runState") in ("scheduled", "running", "completed", "failed")


def kubectl_first_page(kubectl: str, kubeconfig: Path, namespace: str) -> tuple[float, float]:
    """Seconds from starting `kubectl get dops` to its first page (its first chunk of 500 rows answered: kubectl
    logs each response at -v=6) and to the whole table printed (kubectl prints once every chunk is in)."""
    t = time.monotonic()
    proc = subprocess.Popen(
        [kubectl, "--kubeconfig", str(kubeconfig), "get", "dops", "-n", namespace, "-v=6"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = float("nan")
    for line in proc.stderr:
        if first != first and "delegatedoperations?limit=" in line and "200 OK" in line:
            first = time.monotonic() - t
    proc.wait()
    return first, time.monotonic() - t


# ================================================================================ 3. worker start-up


def import_seconds(module: str) -> float:
    """Cumulative import time of `module` in a fresh interpreter (`python -X importtime`), median of 3."""
    runs = []
    for _ in range(3):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(REPO / "operator")),
            check=True,
        ).stderr
        for line in err.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                runs.append(int(parts[1]) / 1e6)
    return statistics.median(runs)


def worker_startup(server: EmbeddedServer, kubeconfig: Path) -> None:
    print("\n== worker start-up ==", flush=True)
    worker, cli = import_seconds("dops.worker.run"), import_seconds("dops.cli.app")
    print(f"  import time of the worker (dops.worker.run, what `dops worker run NS/NAME` imports): {worker:.2f} s")
    print(f"  import time of the whole CLI (dops.cli.app, which the Job's command line skips): {cli:.2f} s")
    kube = KubeClient(load_config(kubeconfig))
    namespace_and_target(kube, "bench-worker", "ext", "external")
    service = DelegatedOperationService(DelegatedOperationRepository(kube), namespace="bench-worker")
    claimed_at: dict[str, float] = {}

    def on_event(event: Any) -> None:
        obj = event.obj
        if event.resource == OPS and (obj.get("status") or {}).get("runState") == "running":
            claimed_at.setdefault(obj["metadata"]["name"], time.monotonic())

    server.call(lambda: server.api.store.listeners.append(on_event))
    samples = []
    try:
        for _ in range(3):
            doc = service.queue_operation(
                "@dops/examples/echo", delegation_target="ext", context={"request_params": {"params": {}}}
            )
            assert doc.id is not None
            service.set_scheduled(doc.id, required_state="queued")  # as the operator admits it
            env = dict(os.environ, PYTHONPATH=str(REPO / "operator"), KUBECONFIG=str(kubeconfig))
            t = time.monotonic()
            proc = subprocess.run(  # the Job container's command line (`dops worker run NS/NAME`)
                [sys.executable, "-m", "dops", "worker", "run", f"bench-worker/{doc.id}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if doc.id not in claimed_at:
                print(f"  worker did not claim (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
                continue
            samples.append(claimed_at[doc.id] - t)
    finally:
        server.call(lambda: server.api.store.listeners.remove(on_event))
        kube.close()
    if samples:
        print(
            f"  process start → claim write (`dops worker run NS/NAME`): median {statistics.median(samples):.2f} s"
            f" (runs: {', '.join(f'{s:.2f}' for s in samples)})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--running", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated sections to skip: large, scale, worker; within scale: kubectl, operator"
        " (`--skip large,worker,kubectl,operator` prints only list_operations and count)",
    )
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    args.skip_parts = skip
    stop_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="dops-bench-scale-"))
    settings = ServerSettings(history_size=max(20_000, args.stored + 10_000), bookmark_interval=5)
    with EmbeddedServer.run_in_thread(settings) as server:
        server.call(lambda: apply_manifest_paths(server.api, [REPO / "crds"]))
        kubeconfig = server.write_kubeconfig(work / "kubeconfig")
        try:
            if "large" not in skip:
                large_objects(server, kubeconfig)
            if "worker" not in skip:
                worker_startup(server, kubeconfig)
            if "scale" not in skip:
                scale(server, kubeconfig, work, args)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    print(f"\nlogs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
