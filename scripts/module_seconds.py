#!/usr/bin/env python3
"""Measured seconds per test module of the embedded half, for balancing `make test`'s shards (tests/conftest.py).

Input: the output of `python scripts/run_tests.py --durations=0 --durations-min=0` (pytest prints setup, call
and teardown time of every test). The embedded processes' sections are summed per module; the real half (one
process) needs no balancing. Output: tests/module_seconds.json (or the path given), rounded to 0.1 s.

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


def embedded_module_seconds(log: str) -> dict[str, float]:
    """Seconds per module over the embedded sections of a run_tests.py log (the real section is skipped)."""
    seconds: dict[str, float] = {}
    in_real = False
    for line in log.splitlines():
        if line.startswith("=" * 10) and "tests, shard" in line:
            in_real = REAL_SECTION in line
            continue
        match = DURATION.match(line)
        if match and not in_real:
            module = match.group(2)
            seconds[module] = seconds.get(module, 0.0) + float(match.group(1))
    return {module: round(value, 1) for module, value in sorted(seconds.items())}


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    measured = embedded_module_seconds(Path(argv[0]).read_text(errors="replace"))
    if not measured:
        print(f"{argv[0]}: no test durations found (run with --durations=0 --durations-min=0)", file=sys.stderr)
        return 1
    out = Path(argv[1]) if len(argv) > 1 else REPO / "tests" / "module_seconds.json"
    out.write_text(json.dumps(measured, indent=1) + "\n")
    print(f"{len(measured)} modules, {sum(measured.values()):.0f} s in all → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
