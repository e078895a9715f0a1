"""`make test`'s shards of each half are balanced by measured module seconds (tests/conftest.py `balanced`, fed by
scripts/module_seconds.py from a run with `--durations=0`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.module_seconds import main, module_seconds_by_half
from tests import conftest
from tests.conftest import UNMEASURED_MODULE_SECONDS, balanced

LOG = """\
tests/unit/test_a.py ....
============================= slowest durations ==============================
120.50s call     tests/chaos/test_chaos.py::test_chaos
3.25s setup    tests/integration/test_b.py::test_one[embedded]
1.00s teardown tests/integration/test_b.py::test_one[embedded]
0.75s call     tests/integration/test_b.py::test_two
============================== the embedded tests, shard 1 ==============================
60.00s call     tests/integration/test_c.py::test_long
============================== the real-control-plane tests, shard 0 ==============================
99.00s call     tests/integration/test_b.py::test_one[real]
"""


def test_the_log_is_summed_per_module_and_half(tmp_path: Path) -> None:
    assert module_seconds_by_half(LOG) == {
        "embedded": {
            "tests/chaos/test_chaos.py": 120.5,
            "tests/integration/test_b.py": 5.0,
            "tests/integration/test_c.py": 60.0,
        },
        "real": {"tests/integration/test_b.py": 99.0},
    }
    log, out = tmp_path / "durations.log", tmp_path / "seconds.json"
    log.write_text(LOG)
    assert main([str(log), str(out)]) == 0
    assert json.loads(out.read_text())["embedded"]["tests/integration/test_c.py"] == 60.0
    log.write_text("no durations here\n")
    assert main([str(log), str(out)]) == 1


def test_each_half_is_balanced_by_its_own_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module in both halves has a figure in each: the real half's shards are dealt by the real figures."""
    figures = tmp_path / "module_seconds.json"
    figures.write_text(json.dumps({"embedded": {"a": 1.0}, "real": {"a": 50.0}}))
    monkeypatch.setattr(conftest, "MODULE_SECONDS", figures)
    assert (conftest.module_seconds("embedded"), conftest.module_seconds("real")) == ({"a": 1.0}, {"a": 50.0})
    figures.write_text("[]")  # not the expected shape: no figures, every module unmeasured
    assert conftest.module_seconds("real") == {}


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        # longest first, each into the emptier shard: 10 | 6 + 3 + 1
        ({"a": 10, "b": 6, "c": 3, "d": 1}, {"a": 0, "b": 1, "c": 1, "d": 1}),
        # unmeasured modules count as UNMEASURED_MODULE_SECONDS; ties go to the lower shard, then by name
        ({"a": UNMEASURED_MODULE_SECONDS}, {"a": 0, "b": 1, "c": 0, "d": 1}),
    ],
    ids=["longest-first", "unmeasured"],
)
def test_modules_are_dealt_longest_first_to_the_least_loaded_shard(
    seconds: dict[str, float], expected: dict[str, int]
) -> None:
    assert balanced(["a", "b", "c", "d"], 2, seconds) == expected
