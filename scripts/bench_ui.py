"""Benchmark of `dops ui` on the embedded control plane with 10,000 stored operations.

Printed:
- start → cache synced: the dashboard's one list of every operation (pages of 500) before it serves;
- first render: a headless Chromium (Debian's `chromium`, via playwright) loading the page until the
  first 50 rows of 10,000 are drawn (skipped with one line when no chromium exists);
- table API: median time of `/api/operations` for a filtered, searched page (server-side, from the cache);
- idle traffic: the API requests the UI server makes per minute while a browser has the page open and
  nothing changes (counted by the control plane itself), and the dashboard's own count.

Usage: python scripts/bench_ui.py [--ops 10000] [--idle-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "operator"), str(REPO)]

from dops.emulator import EmbeddedServer, ServerSettings  # noqa: E402
from dops.emulator.bootstrap import apply_manifest_paths  # noqa: E402
from dops.k8s import KubeClient, load_config  # noqa: E402
from dops.ui.server import UiConfig, UiServer, running  # noqa: E402

NAMESPACE = "default"
OPS = f"/apis/dops.io/v1alpha1/namespaces/{NAMESPACE}/delegatedoperations"
STATES = ["queued", "running", "completed", "completed", "failed"]
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def populate(kube: KubeClient, count: int) -> None:
    def one(i: int) -> None:
        name = f"bench-{i:05d}"
        body = {
            "apiVersion": "dops.io/v1alpha1",
            "kind": "DelegatedOperation",
            "metadata": {"name": name},
            "spec": {"operator": f"@bench/op{i % 7}", "label": f"bench {i}", "context": {"params": {"i": i}}},
        }
        kube.request("POST", OPS, body=body)
        state = STATES[i % len(STATES)]
        at = f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
        status: dict[str, Any] = {"runState": state, "queuedAt": at}
        if state != "queued":
            status.update(scheduledAt=at, startedAt=at)
        if state == "running":
            status["progress"] = {"progress": (i % 100) / 100}
        elif state == "completed":
            status.update(completedAt=at, result={"result": {"i": i}})
        elif state == "failed":
            status.update(failedAt=at, result={"error": "boom", "errorMessage": "boom"})
        kube.request(
            "PATCH", f"{OPS}/{name}/status", body={"status": status}, content_type="application/merge-patch+json"
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def requests_total(server: EmbeddedServer) -> int:
    return int(server.call(lambda: sum(server.api.request_counts.values())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dops-bench-ui-"))
    with EmbeddedServer.run_in_thread(ServerSettings(history_size=50_000)) as server:
        server.call(lambda: apply_manifest_paths(server.api, [REPO / "crds"]))
        kubeconfig = server.write_kubeconfig(tmp / "kubeconfig")
        kube = KubeClient(load_config(kubeconfig))
        started = time.perf_counter()
        populate(kube, args.ops)
        print(f"stored {args.ops} operations in {time.perf_counter() - started:.1f} s")

        ui = UiServer(KubeClient(load_config(kubeconfig)), UiConfig(namespace=NAMESPACE))
        loop = asyncio.new_event_loop()
        box: dict[str, Any] = {}
        ready = threading.Event()

        async def serve() -> None:
            stop = asyncio.Event()
            box["stop"] = stop
            async with running(ui, 0) as url:
                box["url"] = url
                ready.set()
                await stop.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        t0 = time.perf_counter()
        thread.start()
        try:
            assert ready.wait(30) and ui.cache.synced.wait(120), "the dashboard did not start"
            print(f"dops ui start → {args.ops} operations cached: {(time.perf_counter() - t0) * 1000:.0f} ms")
            url = str(box["url"])
            timings = []
            for i in range(20):
                t = time.perf_counter()
                answer = requests.get(
                    url + "api/operations",
                    params={"q": "bench 1", "state": "completed", "page": i + 1, "facets": 1},
                    timeout=30,
                )
                answer.raise_for_status()
                timings.append(time.perf_counter() - t)
            print(
                "table API (search + state filter + facets, one page of 50): "
                f"median {statistics.median(timings) * 1000:.0f} ms"
            )
            browse(url, args, server, ui)
        finally:
            stop = box.get("stop")
            if isinstance(stop, asyncio.Event):
                loop.call_soon_threadsafe(stop.set)
            thread.join(30)
            kube.close()
    shutil.rmtree(tmp, ignore_errors=True)


def browse(url: str, args: argparse.Namespace, server: EmbeddedServer, ui: UiServer) -> None:
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None  # type: ignore[assignment]
    if chromium is None or sync_playwright is None:
        print("first render: skipped (no chromium or playwright); idle traffic measured without a browser")
        idle(args, server, ui)
        return
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            renders = []
            for _ in range(5):
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_function("() => document.querySelectorAll('#ops tr.op').length === 50")
                renders.append(time.perf_counter() - t)
            print(
                f"first render in chromium, 50 rows of {args.ops}: median {statistics.median(renders) * 1000:.0f} ms "
                f"(first {renders[0] * 1000:.0f} ms)"
            )
            idle(args, server, ui)
        finally:
            browser.close()


def idle(args: argparse.Namespace, server: EmbeddedServer, ui: UiServer) -> None:
    before, own = requests_total(server), ui.cache.api_requests
    time.sleep(args.idle_seconds)
    made = requests_total(server) - before
    per_minute = made * 60 / args.idle_seconds
    print(
        f"idle: {per_minute:.1f} API requests/minute at the API server over {args.idle_seconds:.0f} s "
        f"(the dashboard counted {ui.cache.api_requests - own}; its watch is renewed every 5 minutes)"
    )


if __name__ == "__main__":
    main()
