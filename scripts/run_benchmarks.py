#!/usr/bin/env python3
"""`make bench`: run every benchmark, each to its end, then say which missed a target.

Why a runner: the benchmarks exit 1 when a figure misses its target, and make stops at the first command that
fails, so `make bench` used to end at the operator benchmark (its 60 ops/s is not met on a 2-core machine) and
never printed the UI, progress and scale figures; on a slow machine it ended even earlier, at the service
benchmark. Here every benchmark runs whatever the one before it answered, its output streamed as it comes, and a
closing line names the ones that missed a target (exit 1) or says that all met theirs (exit 0). A benchmark that
crashed or was killed is named as such (its exit code is not 1). Ctrl-C stops the one running and the rest.

Usage: python scripts/run_benchmarks.py [NAME ...]   (names from BENCHMARKS; default: all of them, in order)
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MISSED_TARGET = 1  # what a benchmark exits with when a figure misses its target


@dataclass(frozen=True)
class Benchmark:
    name: str
    argv: tuple[str, ...]


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("emulator", ("-m", "dops.emulator.bench")),
    Benchmark("emulator-jobs", ("-m", "dops.emulator.bench_jobs")),
    Benchmark("service", ("scripts/bench_service.py",)),
    Benchmark("operator", ("scripts/bench_operator.py",)),
    Benchmark("ui", ("scripts/bench_ui.py",)),
    Benchmark("progress", ("scripts/bench_progress.py",)),
    Benchmark("scale", ("scripts/bench_scale.py",)),
)


def verdict(results: Sequence[tuple[str, int]]) -> tuple[str, int]:
    """The closing line and the exit code for (benchmark, exit code) pairs."""
    missed = [name for name, code in results if code == MISSED_TARGET]
    broken = [f"{name} (exit {code})" for name, code in results if code not in (0, MISSED_TARGET)]
    if not missed and not broken:
        return f"benchmarks: all {len(results)} met their targets", 0
    parts = []
    if missed:
        parts.append("missed a target: " + ", ".join(missed))
    if broken:
        parts.append("did not finish: " + ", ".join(broken))
    return "benchmarks: " + "; ".join(parts) + " (their lines marked FAIL or BELOW FLOOR above say which)", 1


def run(benchmarks: Sequence[Benchmark], python: str = sys.executable) -> int:
    results: list[tuple[str, int]] = []
    for bench in benchmarks:
        print(f"› {bench.name}: python {' '.join(bench.argv)}", flush=True)
        try:
            code = subprocess.run([python, *bench.argv], cwd=REPO, check=False).returncode
        except KeyboardInterrupt:
            print(f"benchmarks: interrupted during {bench.name}", flush=True)
            return 130
        results.append((bench.name, code))
    line, code = verdict(results)
    print(line, flush=True)
    return code


def main(argv: Sequence[str]) -> int:
    known = {bench.name: bench for bench in BENCHMARKS}
    unknown = [name for name in argv if name not in known]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(known)}", file=sys.stderr)
        return 2
    return run([known[name] for name in argv] if argv else BENCHMARKS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
