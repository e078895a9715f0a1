"""Benchmark of the embedded API server: `python -m dops.emulator.bench [--objects N]`.

The server runs in its own process (as `python -m dops.emulator`), the load comes from this one
over loopback HTTP, so the numbers include HTTP parsing and JSON encoding exactly as clients see
them. Prints one line per measurement and a summary checked against the floors from the issue:
≥ 1,000 creates/s sequential, ≥ 1,500 writes/s with 8 clients, a selector list over 10,000
objects matching 50 in ≤ 50 ms, and RSS ≤ 300 MiB at 10,000 small CRs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.bench.dops.io"},
    "spec": {
        "group": "bench.dops.io",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "operator": {"type": "string", "maxLength": 200},
                                    "size": {"type": "integer", "minimum": 0},
                                    "label": {"type": "string"},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}
BASE = "/apis/bench.dops.io/v1/namespaces/default/gadgets"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def gadget(name: str, group: str) -> dict[str, Any]:
    return {
        "apiVersion": "bench.dops.io/v1",
        "kind": "Gadget",
        "metadata": {"name": name, "labels": {"group": group, "app": "bench"}},
        "spec": {"operator": "@dops/examples/count", "size": 3, "label": f"gadget {name}"},
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(name: str, value: float, unit: str, floor: str = "") -> None:
    suffix = f"   (floor {floor})" if floor else ""
    print(f"{name:<58} {value:>10.1f} {unit}{suffix}", flush=True)


async def sequential_creates(session: aiohttp.ClientSession, url: str, count: int, prefix: str) -> float:
    start = time.perf_counter()
    for i in range(count):
        async with session.post(url + BASE, data=json.dumps(gadget(f"{prefix}-{i}", "seq")), headers=HEADERS) as r:
            if r.status != 201:
                raise RuntimeError(f"create failed: {r.status} {await r.text()}")
            await r.read()
    return count / (time.perf_counter() - start)


async def sequential_patches(session: aiohttp.ClientSession, url: str, names: list[str]) -> float:
    headers = {"Content-Type": "application/merge-patch+json"}
    start = time.perf_counter()
    for i, name in enumerate(names):
        body = json.dumps({"status": {"progress": i, "phase": "running"}})
        async with session.patch(f"{url}{BASE}/{name}/status", data=body, headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"patch failed: {r.status} {await r.text()}")
            await r.read()
    return len(names) / (time.perf_counter() - start)


async def concurrent_creates(url: str, clients: int, per_client: int, prefix: str) -> float:
    async def worker(index: int) -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            for i in range(per_client):
                body = json.dumps(gadget(f"{prefix}-{index}-{i}", "conc"))
                async with session.post(url + BASE, data=body, headers=HEADERS) as r:
                    if r.status != 201:
                        raise RuntimeError(f"create failed: {r.status} {await r.text()}")
                    await r.read()

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return clients * per_client / (time.perf_counter() - start)


async def fill(url: str, total: int, existing: int) -> None:
    """Create objects until `total` exist: 50 of them labelled group=needle, the rest group=hay."""
    needed = total - existing
    needles = 50

    async def worker(index: int, count: int) -> None:
        async with aiohttp.ClientSession() as session:
            for i in range(count):
                n = index * 10_000_000 + i
                group = "needle" if n < needles else "hay"
                async with session.post(url + BASE, data=json.dumps(gadget(f"fill-{n}", group)), headers=HEADERS) as r:
                    await r.read()

    per = max(needed // 4, 1)
    await asyncio.gather(worker(0, per + needed % 4), *(worker(i, per) for i in range(1, 4)))


TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"  # what `kubectl get` asks for


async def timed_list(
    session: aiohttp.ClientSession, url: str, query: str, repeat: int = 5, accept: str = "application/json"
) -> tuple[float, int]:
    samples = []
    count = 0
    for _ in range(repeat):
        start = time.perf_counter()
        async with session.get(url + BASE + query, headers={"Accept": accept}) as r:
            body = await r.read()
        samples.append((time.perf_counter() - start) * 1000)
        decoded = json.loads(body)
        count = len(decoded.get("rows", decoded.get("items", [])))
    return statistics.median(samples), count


async def watch_fanout(url: str, watchers: int, rounds: int = 20) -> tuple[float, float]:
    """Median and max delay between a PATCH response and the MODIFIED event reaching all watchers."""
    sessions = [aiohttp.ClientSession() for _ in range(watchers)]
    try:
        async with aiohttp.ClientSession() as writer:
            async with writer.get(url + BASE + "?limit=1") as r:
                rv = (await r.json())["metadata"]["resourceVersion"]
            responses = [
                await s.get(url + BASE + f"?watch=true&resourceVersion={rv}&fieldSelector=metadata.name=seq-0")
                for s in sessions
            ]
            delays = []
            for i in range(rounds):
                body = json.dumps({"metadata": {"annotations": {"round": str(i)}}})
                start = time.perf_counter()
                async with writer.patch(
                    f"{url}{BASE}/seq-0", data=body, headers={"Content-Type": "application/merge-patch+json"}
                ) as r:
                    await r.read()
                await asyncio.gather(*(resp.content.readline() for resp in responses))
                delays.append((time.perf_counter() - start) * 1000)
            for resp in responses:
                resp.close()
            return statistics.median(delays), max(delays)
    finally:
        for s in sessions:
            await s.close()


async def run(url: str, pid: int, objects: int) -> dict[str, float]:
    results: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", data=json.dumps(CRD), headers=HEADERS
        ) as r:
            if r.status != 201:
                raise RuntimeError(f"CRD create failed: {r.status} {await r.text()}")
        await sequential_creates(session, url, 200, "warmup")
        results["creates_seq"] = await sequential_creates(session, url, 2000, "seq")
        report("sequential creates over one keep-alive connection", results["creates_seq"], "/s", "≥ 1000/s")
        results["patches_seq"] = await sequential_patches(session, url, [f"seq-{i}" for i in range(2000)])
        report("sequential status patches over one connection", results["patches_seq"], "/s")
    results["creates_8"] = await concurrent_creates(url, 8, 250, "conc")
    report("concurrent creates, 8 clients", results["creates_8"], "/s", "≥ 1500/s")
    existing = 200 + 2000 + 2000
    print(f"filling to {objects} objects…", flush=True)
    await fill(url, objects, existing)
    async with aiohttp.ClientSession() as session:
        results["list_all_ms"], n_all = await timed_list(session, url, "")
        report(f"list all {n_all} objects", results["list_all_ms"], "ms")
        results["list_selected_ms"], n_sel = await timed_list(session, url, "?labelSelector=group%3Dneedle")
        report(f"list with label selector matching {n_sel} of {n_all}", results["list_selected_ms"], "ms", "≤ 50 ms")
        results["list_page_ms"], _ = await timed_list(session, url, "?limit=500")
        report("list first page (limit=500)", results["list_page_ms"], "ms")
        results["table_page_ms"], rows = await timed_list(session, url, "?limit=500", accept=TABLE_ACCEPT)
        report(f"list first page as a kubectl Table ({rows} rows, printer columns)", results["table_page_ms"], "ms")
    median, worst = await watch_fanout(url, 10)
    results["fanout_median_ms"] = median
    report("watch fan-out to 10 watchers (median write→all received)", median, "ms")
    report("watch fan-out to 10 watchers (max)", worst, "ms")
    results["rss_mib"] = rss_mib(pid)
    report(f"server RSS with {n_all} objects", results["rss_mib"], "MiB", "≤ 300 MiB")
    return results


def start_emulator(tmp: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """`python -m dops.emulator` in its own process (so load and server do not share a GIL); returns its URL."""
    command = [sys.executable, "-m", "dops.emulator", "--port", "0", "--kubeconfig", str(Path(tmp) / "kubeconfig")]
    proc = subprocess.Popen(
        [*command, *extra], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving at" not in line:
        proc.kill()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return proc, line.strip().rsplit(" ", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dops.emulator.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000, help="objects stored for the list/RSS measurements")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dops-bench-") as tmp:
        try:
            proc, url = start_emulator(tmp, "--controllers", "none")
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        try:
            print(f"emulator at {url} (pid {proc.pid}); client in pid {os.getpid()}", flush=True)
            results = asyncio.run(run(url, proc.pid, args.objects))
        finally:
            proc.terminate()
            proc.wait(10)
    floors = [
        ("creates_seq", results["creates_seq"] >= 1000),
        ("creates_8", results["creates_8"] >= 1500),
        ("list_selected_ms", results["list_selected_ms"] <= 50),
        ("rss_mib", results["rss_mib"] <= 300),
    ]
    missed = [name for name, ok in floors if not ok]
    print("floors: all met" if not missed else f"floors missed: {', '.join(missed)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
