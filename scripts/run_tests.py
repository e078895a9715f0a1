#!/usr/bin/env python3
"""Run the test suite as three pytest processes at once: the tests that use no real control plane, split in
two shards by module, and the tests that use the real control plane (with its own real control plane).

Why: the embedded tests are CPU-bound and the real-control-plane tests mostly wait on their API server
(watches, controllers), so on a 2-core machine three processes overlap well, and `make test` takes about
the time of the longest one instead of the sum. Each is a plain pytest run (`--half embedded --shard K/2`
or `--half real`, see tests/conftest.py); extra arguments go to all of them. The shard counts are
EMBEDDED_SHARDS and REAL_SHARDS below; tests/conftest.py deals the modules to the shards by their measured
seconds, each half by its own figures (tests/module_seconds.json, written by scripts/module_seconds.py from a
run with `--durations=0 --durations-min=0`), so that the shards end close together.

The first embedded shard streams its output as it runs; the others' output is printed after it, so the
log reads like ordinary pytest runs. Then one closing line counts them all, and the differential's
fidelity figure is computed from every process's exported statements (tests/fidelity.py). The exit
code is pytest's: 0 when every process passed (one with nothing to run counts as passed). Ctrl-C or SIGTERM
stops them all; each stops the processes it started (its fixtures' teardown).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fidelity import EXPORT_ENV, describe, merge_exports  # noqa: E402
from tests.processes import interrupt_on_sigterm  # noqa: E402

NO_TESTS_COLLECTED = 5
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def counts(output: str) -> dict[str, int]:
    """The counts of pytest's final summary line (`=== 3 failed, 2545 passed, 10 skipped in …`)."""
    for line in reversed(output.splitlines()):
        if re.search(r" in [\d.]+s", line) and COUNT.search(line):
            found: dict[str, int] = {}
            for number, word in COUNT.findall(line):
                key = "errors" if word.startswith("error") else word
                found[key] = found.get(key, 0) + int(number)
            return found
    return {}


# Measured on clean clones (warm caches, --durations=0): 2 + 1 processes 14:55 (shards 14:21, 13:25 and 13:45 real);
# 3 + 1 14:55 (the real one then the longest, 14:26); 3 + 2 16:43 (25:44 user CPU-minutes instead of 21:52: every
# process adds its own collection and, for the real half, its own control plane, on cores already nearly full).
EMBEDDED_SHARDS = 2  # the embedded tests are CPU-bound; two processes of them use both cores
REAL_SHARDS = 1  # the real-plane tests mostly wait on their API server: one process of them fills the gaps


def main(argv: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest", *argv]
    with tempfile.TemporaryDirectory(prefix="dops-tests-") as scratch:
        runs = {
            f"embedded-{k}": ["--half", "embedded", "--shard", f"{k}/{EMBEDDED_SHARDS}"] for k in range(EMBEDDED_SHARDS)
        }
        runs.update({f"real-{k}": ["--half", "real", "--shard", f"{k}/{REAL_SHARDS}"] for k in range(REAL_SHARDS)})
        streamed = "embedded-0"
        exports = {name: Path(scratch) / f"fidelity-{name}.json" for name in runs}
        logs = {name: Path(scratch) / f"{name}.log" for name in runs if name != streamed}
        procs: dict[str, subprocess.Popen[str]] = {}
        sinks = {name: path.open("w") for name, path in logs.items()}
        try:
            for name, args in runs.items():
                env = {**os.environ, EXPORT_ENV: str(exports[name])}
                out = sinks.get(name, subprocess.PIPE)
                procs[name] = subprocess.Popen(
                    [*pytest, *args], stdout=out, stderr=subprocess.STDOUT, env=env, text=True
                )
            captured: list[str] = []
            embedded = procs[streamed]

            def stream() -> None:
                assert embedded.stdout is not None
                for line in embedded.stdout:
                    captured.append(line)
                    sys.stdout.write(line)
                    sys.stdout.flush()

            reader = threading.Thread(target=stream, daemon=True)
            reader.start()
            try:
                codes = {name: proc.wait() for name, proc in procs.items()}
                reader.join()
            except KeyboardInterrupt:
                # Pass on the signal that stopped this run (each process stops the processes it started): after a
                # SIGTERM, interrupt_on_sigterm has set SIGTERM to be ignored.
                stop = signal.SIGTERM if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN else signal.SIGINT
                for proc in procs.values():
                    proc.send_signal(stop)
                for proc in procs.values():
                    try:
                        proc.wait(120)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                print("run_tests: interrupted; every process stopped", file=sys.stderr)
                return 130
        finally:
            for sink in sinks.values():
                sink.close()
        outputs = {streamed: "".join(captured)}
        for name, path in logs.items():
            outputs[name] = path.read_text(errors="replace")
            half, _, shard = name.partition("-")
            title = "the real-control-plane tests" if half == "real" else "the embedded tests"
            print("\n" + "=" * 30 + f" {title}, shard {shard} " + "=" * 30, flush=True)
            sys.stdout.write(outputs[name])
        total: dict[str, int] = {}
        for output in outputs.values():
            for key, value in counts(output).items():
                total[key] = total.get(key, 0) + value
        print(describe(merge_exports(list(exports.values()))))
    if all(code == NO_TESTS_COLLECTED for code in codes.values()):
        return NO_TESTS_COLLECTED  # nothing ran at all: say so, as pytest would
    results = [0 if code == NO_TESTS_COLLECTED else code for code in codes.values()]
    summary = f"{total.get('passed', 0)} passed, {total.get('failed', 0) + total.get('errors', 0)} failed"
    if total.get("skipped"):
        summary += f", {total['skipped']} skipped"
    print(summary)  # the plain closing line: every process together
    return next((code for code in results if code), 0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt_on_sigterm)
    sys.exit(main(sys.argv[1:]))
