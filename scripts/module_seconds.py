#!/usr/bin/env python3
"""Measured seconds per test module of each half, for balancing `make test`'s shards (tests/conftest.py).

Input: the output of `python scripts/run_tests.py --durations=0 --durations-min=0` (pytest prints setup, call
and teardown time of every test). Each process's section is summed per module into its half: the embedded
processes' into "embedded", the real-control-plane processes' into "real" (a module with tests in both halves
has a figure in each). Output: tests/module_seconds.json (or the path given), {"embedded": {module: s}, "real":
{module: s}}, rounded to 0.1 s.

Usage: python scripts/run_tests.py --durations=0 --durations-min=0 > durations.log
       python scripts/module_seconds.py durations.log [tests/module_seconds.json]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DURATION = re.compile(r"^(\d+(?:\.\d+)?)s (?:setup|call|teardown)\s+(\S+?\.py)::")
REAL_SECTION = "the real-control-plane tests, shard"


def module_seconds_by_half(log: str) -> dict[str, dict[str, float]]:
    """{"embedded": {module: seconds}, "real": {module: seconds}} over the sections of a run_tests.py log (the
    first section, printed without a title, is an embedded shard's)."""
    seconds: dict[str, dict[str, float]] = {"embedded": {}, "real": {}}
    half = "embedded"
    for line in log.splitlines():
        if line.startswith("=" * 10) and "tests, shard" in line:
            half = "real" if REAL_SECTION in line else "embedded"
            continue
        match = DURATION.match(line)
        if match:
            module = match.group(2)
            seconds[half][module] = seconds[half].get(module, 0.0) + float(match.group(1))
    return {h: {module: round(value, 1) for module, value in sorted(found.items())} for h, found in seconds.items()}


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    measured = module_seconds_by_half(Path(argv[0]).read_text(errors="replace"))
    if not any(measured.values()):
        print(f"{argv[0]}: no test durations found (run with --durations=0 --durations-min=0)", file=sys.stderr)
        return 1
    out = Path(argv[1]) if len(argv) > 1 else REPO / "tests" / "module_seconds.json"
    out.write_text(json.dumps(measured, indent=1) + "\n")
    summary = ", ".join(f"{half} {len(found)} modules, {sum(found.values()):.0f} s" for half, found in measured.items())
    print(f"{summary} → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
