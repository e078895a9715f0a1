"""Benchmark the FiftyOne-compatible service against the embedded control plane.

Starts its own embedded API server (127.0.0.1, random port), loads crds/, stores 1,000 and then
10,000 operations through `queue_operation`, and prints:

- queue_operation throughput (operations/s while filling up to the size),
- `get` latency,
- `list_operations(run_state="queued", paging=limit 50)` latency,
- `count(filters={"run_state": "queued"})` latency,

as medians (and p90) over repeated calls. Floors (issue 4): queue >= 200/s; list and count <= 150 ms
at 10,000 operations. `--mixed` makes 90% of the stored operations completed first (a realistic
store: most operations are finished) and measures again. `--profile` breaks the count call down
into server-side and client-side time.

Usage: python scripts/bench_service.py [--sizes 1000 10000] [--repeat 20] [--mixed] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))

from dops import DelegatedOperationPagingParams, DelegatedOperationService  # noqa: E402
from dops.emulator import EmbeddedServer, ServerSettings  # noqa: E402
from dops.emulator.bootstrap import apply_manifest_paths  # noqa: E402
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config  # noqa: E402

FLOOR_QUEUE = 200.0
FLOOR_MS = 150.0


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    fn()  # warm up
    samples = []
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.9))], result


def verdict(ok: bool) -> str:
    return "ok" if ok else "BELOW FLOOR"


def profile_count(server: EmbeddedServer, service: DelegatedOperationService, repeat: int = 5) -> None:
    """Where the time of `count` goes: the emulator's list filtering and Table rendering (cells and JSON, encoded
    row by row) are timed by wrapping them on the running server, full GC passes (server and client share this
    process) with `gc.callbacks`; the rest is HTTP plus the client's decoding."""
    import gc

    spent = {"server list+filter": 0.0, "server Table (cells + JSON)": 0.0, "full GC": 0.0}
    api, http = server.api, server.http
    originals = (api.list_objects, http._table_body)
    gc_started: list[float] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            gc_started.append(time.perf_counter())
        elif gc_started:
            spent["full GC"] += time.perf_counter() - gc_started.pop()

    def timed_call(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start

        return wrapper

    api.list_objects = timed_call("server list+filter", originals[0])  # type: ignore[method-assign]
    http._table_body = timed_call("server Table (cells + JSON)", originals[1])  # type: ignore[method-assign]
    gc.callbacks.append(on_gc)
    try:
        start = time.perf_counter()
        for _ in range(repeat):
            service.count(filters={"run_state": "queued"})
        total = (time.perf_counter() - start) / repeat * 1000
    finally:
        gc.callbacks.remove(on_gc)
        api.list_objects, http._table_body = originals  # type: ignore[method-assign]
    parts = {k: v / repeat * 1000 for k, v in spent.items()}
    rest = max(total - sum(parts.values()), 0.0)
    print(
        f"    count profile (mean of {repeat}): "
        + ", ".join(f"{k} {v:.0f} ms" for k, v in parts.items())
        + f", HTTP + client decode {rest:.0f} ms; total {total:.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--mixed", action="store_true", help="also measure with 90%% of operations completed")
    parser.add_argument("--profile", action="store_true", help="break the count latency down")
    args = parser.parse_args()

    settings = ServerSettings(history_size=max(args.sizes) * 4 + 1000)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer.run_in_thread(settings) as server:
        server.call(lambda: apply_manifest_paths(server.api, [REPO / "crds"]))
        kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig")
        service = DelegatedOperationService(DelegatedOperationRepository(KubeClient(load_config(kubeconfig))))
        ids: list[str] = []
        print(f"dops service benchmark against the embedded API server at {server.url}")
        print(f"{'ops':>7} {'queue/s':>9} {'get ms':>8} {'list ms (p90)':>15} {'count ms (p90)':>16}  floors")
        for size in sorted(args.sizes):
            start = time.perf_counter()
            added = 0
            while len(ids) < size:
                doc = service.queue_operation(
                    f"@dops/examples/{('echo', 'count', 'sleep', 'fail')[len(ids) % 4]}",
                    context={"request_params": {"params": {"i": len(ids)}, "dataset_name": "bench"}},
                )
                ids.append(str(doc.id))
                added += 1
            rate = added / (time.perf_counter() - start) if added else float("nan")
            get_ms, _, _ = timed(lambda: service.get(ids[len(ids) // 2]), args.repeat)
            paging = DelegatedOperationPagingParams(limit=50)
            list_ms, list_p90, listed = timed(
                lambda paging=paging: service.list_operations(run_state="queued", paging=paging), args.repeat
            )
            count_ms, count_p90, counted = timed(lambda: service.count(filters={"run_state": "queued"}), args.repeat)
            assert len(listed) == 50 and counted == size, (len(listed), counted)
            ok_queue = rate >= FLOOR_QUEUE
            ok_list = list_ms <= FLOOR_MS or size < 10000
            ok_count = count_ms <= FLOOR_MS or size < 10000
            failures += not (ok_queue and ok_list and ok_count)
            print(
                f"{size:>7} {rate:>9.0f} {get_ms:>8.1f} {list_ms:>7.1f} ({list_p90:>5.1f}) "
                f"{count_ms:>8.1f} ({count_p90:>5.1f})  queue {verdict(ok_queue)}, list {verdict(ok_list)}, "
                f"count {verdict(ok_count)}"
            )
            if args.profile:
                profile_count(server, service)
        if args.mixed:
            size = len(ids)
            for doc_id in ids[: size * 9 // 10]:
                service.set_completed(doc_id, result={"ok": True})
            queued = size - size * 9 // 10
            paging = DelegatedOperationPagingParams(limit=50)
            list_ms, list_p90, _ = timed(
                lambda: service.list_operations(run_state="queued", paging=paging), args.repeat
            )
            count_ms, count_p90, counted = timed(lambda: service.count(filters={"run_state": "queued"}), args.repeat)
            assert counted == queued
            print(
                f"{size:>7} mixed (90% completed, {queued} queued): list {list_ms:.1f} ms (p90 {list_p90:.1f}), "
                f"count {count_ms:.1f} ms (p90 {count_p90:.1f})"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
