"""Benchmark of the embedded workload runtime: `python -m dops.emulator.bench_jobs [--jobs N]`.

Starts `python -m dops.emulator` with every controller in its own process, creates a burst of Jobs
over HTTP and waits (by watch) until every Job is Complete. Measures the whole lifecycle: Job
create → pod created and bound → Running → Succeeded → Job Complete.

- simulated mode: the kubelet runs no process (KWOK-style stages); floor ≥ 100 Jobs/s.
- process mode: each container is a real `python -c pass` process.

API writes per Job are counted from the global resourceVersion (every stored write bumps it by
one), so they include the controllers' in-process writes, not only HTTP requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from typing import Any

import aiohttp

from .bench import start_emulator

HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
JOBS = "/apis/batch/v1/namespaces/default/jobs"


def job(name: str, image: str, command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"bench": "jobs"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": image, "command": command}]}
            },
        },
    }


async def current_rv(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + JOBS + "?limit=1") as r:
        return int((await r.json())["metadata"]["resourceVersion"])


async def run_burst(url: str, count: int, image: str, command: list[str], prefix: str) -> tuple[float, float, int]:
    """Returns (seconds, writes per job, completed)."""
    async with aiohttp.ClientSession() as session:
        rv = await current_rv(session, url)
        complete: set[str] = set()
        done = asyncio.Event()

        async def watch() -> None:
            query = f"?watch=true&resourceVersion={rv}&labelSelector=bench%3Djobs"
            async with session.get(url + JOBS + query, timeout=aiohttp.ClientTimeout(total=None)) as resp:
                async for line in resp.content:
                    event = json.loads(line)
                    obj = event["object"]
                    name = obj["metadata"]["name"]
                    if not name.startswith(prefix):
                        continue
                    conditions = (obj.get("status") or {}).get("conditions") or []
                    if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions):
                        complete.add(name)
                        if len(complete) >= count:
                            done.set()
                            return

        watcher = asyncio.create_task(watch())
        start = time.perf_counter()

        async def create(worker: int) -> None:
            async with aiohttp.ClientSession() as own:
                for i in range(worker, count, 8):
                    body = json.dumps(job(f"{prefix}-{i}", image, command))
                    async with own.post(url + JOBS, data=body, headers=HEADERS) as r:
                        if r.status != 201:
                            raise RuntimeError(f"create failed: {r.status} {await r.text()}")

        await asyncio.gather(*(create(w) for w in range(8)))
        created = time.perf_counter()
        print(f"  {count} Jobs created in {created - start:.2f}s; waiting for completion…", flush=True)
        last_report = time.perf_counter()
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), 2.0)
            except TimeoutError:
                if time.perf_counter() - last_report > 2:
                    print(f"  … {len(complete)}/{count} finished", flush=True)
                    last_report = time.perf_counter()
            if time.perf_counter() - start > 600:
                break
        elapsed = time.perf_counter() - start
        watcher.cancel()
        end_rv = await current_rv(session, url)
        return elapsed, (end_rv - rv) / count, len(complete)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dops.emulator.bench_jobs", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="Jobs in the simulated burst")
    parser.add_argument("--process-jobs", type=int, default=100, help="Jobs in the process-mode burst")
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dops-bench-jobs-") as tmp:
        print(f"simulated kubelet: {args.jobs} Jobs in a burst", flush=True)
        proc, url = start_emulator(tmp, "--controllers", "all", "--image-map", "bench/sim:*=simulated")
        try:
            seconds, writes, done = asyncio.run(run_burst(url, args.jobs, "bench/sim:1", ["true"], "sim"))
        finally:
            proc.terminate()
            proc.wait(30)
        results["sim_jobs_per_s"] = done / seconds
        print(f"{'simulated: Jobs through the whole lifecycle':<52} {done / seconds:>8.1f} Jobs/s   (floor ≥ 100)")
        print(f"{'simulated: Jobs completed':<52} {done:>8d} / {args.jobs}")
        print(f"{'simulated: API writes per Job (incl. its create)':<52} {writes:>8.1f}")
        print(f"process kubelet: {args.process_jobs} Jobs running `python -c pass`", flush=True)
        proc, url = start_emulator(tmp, "--controllers", "all", "--image-map", "bench/proc:*=process")
        try:
            seconds, writes, done = asyncio.run(
                run_burst(url, args.process_jobs, "bench/proc:1", [sys.executable, "-c", "pass"], "proc")
            )
        finally:
            proc.terminate()
            proc.wait(30)
        print(f"{'process: Jobs through the whole lifecycle':<52} {done / seconds:>8.1f} Jobs/s")
        print(f"{'process: Jobs completed':<52} {done:>8d} / {args.process_jobs}")
        print(f"{'process: API writes per Job (incl. its create)':<52} {writes:>8.1f}")
    ok = results["sim_jobs_per_s"] >= 100
    print("floors: all met" if ok else "floors missed: simulated Jobs/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
