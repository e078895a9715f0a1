"""Benchmark of progress coalescing (issue 15): 1,000 running operations reporting progress as fast as they can.

Three processes: the embedded control plane (`python -m dops.emulator`, no controllers), the operator
(`dops.handlers.run_operator`, its own process so that its CPU time is its own) and this harness. The harness
queues N operations on a `mode: external` DelegationTarget (the operator leaves their running to an external
executor, here the harness), claims them all (`running`) and then plays N workers at once: each operation has
the worker's `dops.execution.ProgressReporter` (the coalescing one, with the target's
`progressIntervalSeconds`) writing through the worker's fenced `DelegatedOperationService.set_progress`, and a
few driver threads call `report()` on every reporter in a tight loop for `--seconds` (the reporters start over
the first interval, as operations that did not all start at the same instant). The reports carry their wall
time in the label, so a read shows how old the progress it sees is. At the end every reporter is closed with its
final value flushed (a worker carries it in its terminal write).

Printed per interval (`--intervals`, default the targets' default 10 s, then 1 s for comparison):
- progress writes/s reaching the API server (the emulator's counters: PATCH delegatedoperations/status) and
  all requests/s, beside the target (< 100 writes/s at the default interval);
- the operator's CPU (% of one core) while the progress writes flow;
- staleness of what a read shows while operations report (p50/p99/max of now − the shown report's time, over
  one LIST a second), beside the interval;
- the lag from each reporter's last report to a read showing it (p50/p99/max), and whether every final value
  was written;
- `kubectl get dops NAME` twice, an interval apart: PROGRESS moves (when the fetched kubectl exists).

Usage: python scripts/bench_progress.py [--ops 1000] [--seconds 30] [--intervals 10 1] [--drivers 4]
"""

from __future__ import annotations

import argparse
import logging
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "scripts"))

from bench_support import (  # noqa: E402
    JSON,
    Proc,
    create_namespace,
    create_target,
    emulator_stats,
    free_port,
    kubectl_binary,
    pct,
    start_emulator,
    start_operator,
    stop_on_sigterm,
    url_ok,
    verdict,
    wait,
)

from dops import DelegatedOperationService  # noqa: E402
from dops.api.types import ExecutionProgress  # noqa: E402
from dops.domain.progress import DEFAULT_PROGRESS_INTERVAL_SECONDS  # noqa: E402
from dops.execution import ProgressReporter  # noqa: E402
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config  # noqa: E402

NAMESPACE_PREFIX = "bench-progress"
TARGET_WRITES_PER_SECOND = 100.0
RUNNING_FENCE = [{"op": "test", "path": "/status/runState", "value": "running"}]


def status_patches(stats: JSON) -> int:
    return int((stats.get("requests") or {}).get("delegatedoperations/status", {}).get("patch", 0))


def all_requests(stats: JSON) -> int:
    return sum(sum(verbs.values()) for verbs in (stats.get("requests") or {}).values())


def shown(kube: KubeClient, namespace: str) -> dict[str, tuple[float | None, str]]:
    """name → (progress, label) of every operation in the namespace, from one LIST."""
    body = kube.request("GET", f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegatedoperations")
    out: dict[str, tuple[float | None, str]] = {}
    for item in body.get("items") or []:
        progress = (item.get("status") or {}).get("progress") or {}
        out[item["metadata"]["name"]] = (progress.get("progress"), str(progress.get("label") or ""))
    return out


def kubectl_progress(kubectl: str, kubeconfig: Path, namespace: str, name: str) -> str:
    try:
        out = subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), "get", "dops", name, "-n", namespace],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()
    except subprocess.TimeoutExpired:
        return "(kubectl timed out)"
    if len(out) < 2:
        return "?"
    header, row = out[0].split(), out[1].split()
    return row[header.index("PROGRESS")] if "PROGRESS" in header and len(row) > header.index("PROGRESS") else "?"


def setup(service: DelegatedOperationService, kube: KubeClient, target: str, interval: int, ops: int) -> list[str]:
    """A namespace and an external target with the interval, and `ops` operations on it claimed (`running`)."""
    namespace = service.namespace
    create_namespace(kube, namespace)
    create_target(kube, namespace, target, {"mode": "external", "progressIntervalSeconds": interval})

    def one(i: int) -> str:
        doc = service.queue_operation(
            "@dops/examples/count",
            label=f"progress {i}",
            delegation_target=target,
            context={"request_params": {"params": {"n": 100}}},
        )
        assert doc.id is not None
        service.set_running(doc.id, required_state="queued")
        return doc.id

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, range(ops)))


def run_interval(args: argparse.Namespace, work: Path, kubeconfig: Path, url: str, interval: int) -> None:
    kube = KubeClient(load_config(kubeconfig), timeout=60)
    namespace = f"{NAMESPACE_PREFIX}-{interval}s"
    service = DelegatedOperationService(DelegatedOperationRepository(kube), namespace=namespace, sync_labels=False)
    target = f"every-{interval}s"
    print(f"\n== progressIntervalSeconds {interval}: {args.ops} running operations ==", flush=True)
    t0 = time.monotonic()
    names = setup(service, kube, target, interval, args.ops)
    print(f"  {len(names)} operations queued and claimed in {time.monotonic() - t0:.1f} s", flush=True)

    metrics_port = free_port()
    operator: Proc = start_operator(work, kubeconfig, metrics_port)
    try:
        wait(lambda: url_ok(f"http://127.0.0.1:{metrics_port}/metrics"), 120, "the operator's metrics endpoint")
        time.sleep(3.0)  # it has listed everything; what follows is the progress writes' cost

        reporters = {
            name: ProgressReporter(
                lambda p, ref=name: service.set_progress(ref, p, fence=RUNNING_FENCE), min_interval=interval
            )
            for name in names
        }
        starts = {name: random.uniform(0, min(interval, args.seconds / 2)) for name in names}
        starts[names[0]] = 0.0  # the one `kubectl get` samples reports from the start
        last_report: dict[str, tuple[float, str]] = {}
        stop = threading.Event()
        start_wall = time.time()
        before, cpu_before, t_start = emulator_stats(url), operator.cpu_seconds(), time.monotonic()

        def drive(mine: list[str]) -> None:
            while not stop.is_set():
                now = time.time()
                for name in mine:
                    if now - start_wall < starts[name]:
                        continue
                    label = f"{now:.3f}"
                    reporters[name].report(
                        ExecutionProgress(round(min(0.99, (now - start_wall) / args.seconds), 2), label)
                    )
                    last_report[name] = (now, label)
                time.sleep(0.001)  # "as fast as it can", leaving the GIL to the writer threads now and then

        drivers = [
            threading.Thread(target=drive, args=(names[i :: args.drivers],), daemon=True) for i in range(args.drivers)
        ]
        for d in drivers:
            d.start()

        staleness: list[float] = []
        moving: list[str] = []
        kubectl = kubectl_binary() if not args.no_kubectl else None
        next_kubectl = time.monotonic() + 2.0
        while time.monotonic() - t_start < args.seconds:
            time.sleep(1.0)
            now = time.time()
            for name, (_, label) in shown(kube, namespace).items():
                if label and now - start_wall > starts[name] + interval:  # past its first interval
                    staleness.append(now - float(label))
            if kubectl is not None and time.monotonic() >= next_kubectl and len(moving) < 3:
                moving.append(kubectl_progress(kubectl, kubeconfig, namespace, names[0]))
                next_kubectl = time.monotonic() + interval + 1.0
        stop.set()
        for d in drivers:
            d.join()
        elapsed = time.monotonic() - t_start
        after, cpu_after = emulator_stats(url), operator.cpu_seconds()

        # The end: every reporter hands its final value over (a worker's terminal write carries it).
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda r: r.close(flush=True), reporters.values()))
        final_lag: list[float] = []
        missing = dict(last_report)
        deadline = time.monotonic() + 60
        while missing and time.monotonic() < deadline:
            now = time.time()
            for name, (_, label) in shown(kube, namespace).items():
                if name in missing and label == missing[name][1]:
                    final_lag.append(now - missing.pop(name)[0])
            time.sleep(0.2)

        writes = status_patches(after) - status_patches(before)
        requests = all_requests(after) - all_requests(before)
        reports_failed = sum(r.failures for r in reporters.values())
        cpu = (cpu_after - cpu_before) / elapsed * 100
        writes_per_s = writes / elapsed
        print(f"  reporting for {elapsed:.1f} s ({args.drivers} driver threads, {len(reporters)} reporters)")
        ok = writes_per_s < TARGET_WRITES_PER_SECOND or interval != DEFAULT_PROGRESS_INTERVAL_SECONDS
        target_note = (
            f"target < {TARGET_WRITES_PER_SECOND:.0f}/s: {verdict(ok)}"
            if interval == DEFAULT_PROGRESS_INTERVAL_SECONDS
            else f"ceiling {args.ops / interval:.0f}/s"
        )
        print(
            f"  progress writes reaching the API server: {writes_per_s:.1f}/s ({target_note});"
            f" all requests {requests / elapsed:.1f}/s"
        )
        print(f"  operator CPU while they flow: {cpu:.1f}% of one core; RSS {operator.rss_mib():.0f} MiB")
        print(
            f"  staleness of a read while reporting: p50 {pct(staleness, 0.5):.2f} s, p99 {pct(staleness, 0.99):.2f} s,"
            f" max {max(staleness, default=float('nan')):.2f} s (target ≤ interval {interval} s + write time)"
        )
        print(
            "  last report → a read shows it (every reporter stops at once, so the final writes queue up):"
            f" p50 {pct(final_lag, 0.5):.2f} s, p99 {pct(final_lag, 0.99):.2f} s,"
            f" max {max(final_lag, default=float('nan')):.2f} s; final values written: "
            f"{len(final_lag)}/{len(last_report)} {verdict(not missing)}; failed writes {reports_failed}"
        )
        if moving:
            print(f"  kubectl get dops {names[0]}: PROGRESS {' → '.join(moving)} (an interval apart)")
    finally:
        operator.stop()
        kube.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the operations report")
    parser.add_argument("--intervals", type=int, nargs="+", default=[DEFAULT_PROGRESS_INTERVAL_SECONDS, 1])
    parser.add_argument("--drivers", type=int, default=4, help="threads calling report() on every reporter")
    parser.add_argument("--no-kubectl", action="store_true", help="skip the `kubectl get dops` samples")
    args = parser.parse_args()
    stop_on_sigterm()
    # A failed progress write is a warning in a worker; here the count of them is printed instead of 1,000 lines.
    logging.getLogger("dops.execution.context").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="dops-bench-progress-"))
    emulator, kubeconfig, url = start_emulator(work)
    try:
        for interval in args.intervals:
            run_interval(args, work, kubeconfig, url, interval)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        emulator.stop()
    print(f"\nlogs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
