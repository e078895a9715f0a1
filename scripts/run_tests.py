#!/usr/bin/env python3
"""Run the test suite as two pytest processes at once: the tests that use the real control plane, and the rest.

Why: most real-control-plane tests wait on the API server (watches, controllers, a namespace's 5 s
deletion grace), so on a 2-core machine the two halves overlap well, and `make test` takes about the
time of the longer half instead of the sum. Each half is a plain pytest run (`--half embedded` /
`--half real`, see tests/conftest.py); extra arguments go to both.

The embedded half streams its output as it runs; the real half's output is printed after it, so the
log reads like two ordinary pytest runs. Then one closing line counts both halves, and the
differential's fidelity figure is computed from both halves' exported statements (tests/fidelity.py).
The exit code is pytest's: 0 when both halves passed (a half with nothing to run counts as passed).
Ctrl-C stops both halves; each stops the processes it started (its fixtures' teardown).
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


def main(argv: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest", *argv]
    with tempfile.TemporaryDirectory(prefix="dops-tests-") as scratch:
        exports = {half: Path(scratch) / f"fidelity-{half}.json" for half in ("embedded", "real")}
        real_log = Path(scratch) / "real.log"
        env_real = {**os.environ, EXPORT_ENV: str(exports["real"])}
        env_embedded = {**os.environ, EXPORT_ENV: str(exports["embedded"])}
        with real_log.open("w") as sink:
            real = subprocess.Popen([*pytest, "--half", "real"], stdout=sink, stderr=subprocess.STDOUT, env=env_real)
            embedded = subprocess.Popen(
                [*pytest, "--half", "embedded"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env_embedded,
                text=True,
            )  # fmt: skip
            captured: list[str] = []

            def stream() -> None:
                assert embedded.stdout is not None
                for line in embedded.stdout:
                    captured.append(line)
                    sys.stdout.write(line)
                    sys.stdout.flush()

            reader = threading.Thread(target=stream, daemon=True)
            reader.start()
            try:
                embedded_code = embedded.wait()
                reader.join()
                real_code = real.wait()
            except KeyboardInterrupt:
                for proc in (embedded, real):
                    proc.send_signal(signal.SIGINT)
                for proc in (embedded, real):
                    try:
                        proc.wait(120)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                print("run_tests: interrupted; both halves stopped", file=sys.stderr)
                return 130
        real_output = real_log.read_text(errors="replace")
        print("\n" + "=" * 30 + " the real-control-plane half " + "=" * 30, flush=True)
        sys.stdout.write(real_output)
        total: dict[str, int] = {}
        for half_counts in (counts("".join(captured)), counts(real_output)):
            for key, value in half_counts.items():
                total[key] = total.get(key, 0) + value
        print(describe(merge_exports(list(exports.values()))))
    if embedded_code == real_code == NO_TESTS_COLLECTED:
        return NO_TESTS_COLLECTED  # nothing ran at all: say so, as pytest would
    codes = [0 if code == NO_TESTS_COLLECTED else code for code in (embedded_code, real_code)]
    summary = f"{total.get('passed', 0)} passed, {total.get('failed', 0) + total.get('errors', 0)} failed"
    if total.get("skipped"):
        summary += f", {total['skipped']} skipped"
    print(summary)  # the plain closing line: both halves together
    return next((code for code in codes if code), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
