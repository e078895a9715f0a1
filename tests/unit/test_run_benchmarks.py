"""scripts/run_benchmarks.py (`make bench`): every benchmark runs, whatever the one before it answered, and the
closing line says which missed a target."""

from __future__ import annotations

import pytest

from scripts.run_benchmarks import BENCHMARKS, REPO, Benchmark, main, run, verdict


@pytest.mark.parametrize(
    ("results", "line", "code"),
    [
        ([("a", 0), ("b", 0)], "benchmarks: all 2 met their targets", 0),
        ([("a", 1), ("b", 0), ("c", 1)], "benchmarks: missed a target: a, c", 1),
        ([("a", 0), ("b", -9)], "benchmarks: did not finish: b (exit -9)", 1),
        ([("a", 1), ("b", 2)], "benchmarks: missed a target: a; did not finish: b (exit 2)", 1),
    ],
)
def test_verdict(results: list[tuple[str, int]], line: str, code: int) -> None:
    said, exit_code = verdict(results)
    assert said.startswith(line) and exit_code == code


def test_a_missed_target_does_not_stop_the_benchmarks_after_it(capfd: pytest.CaptureFixture[str]) -> None:
    benches = [
        Benchmark("first", ("-c", "print('first figures')")),
        Benchmark("slow", ("-c", "import sys; print('  FAIL operations/s 21 ≥ 60'); sys.exit(1)")),
        Benchmark("last", ("-c", "print('last figures')")),
    ]
    assert run(benches) == 1
    out = capfd.readouterr().out
    assert out.index("first figures") < out.index("FAIL operations/s") < out.index("last figures")
    assert out.rstrip().splitlines()[-1].startswith("benchmarks: missed a target: slow")


def test_every_benchmark_make_bench_names_exists_and_unknown_names_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for bench in BENCHMARKS:
        if bench.argv[0] == "-m":
            assert (REPO / "operator" / (bench.argv[1].replace(".", "/") + ".py")).is_file(), bench
        else:
            assert (REPO / bench.argv[0]).is_file(), bench
    assert main(["nope"]) == 2
    assert "unknown benchmark nope; choose from emulator, emulator-jobs" in capsys.readouterr().err
