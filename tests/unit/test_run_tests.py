"""scripts/run_tests.py: the two halves' counts and fidelity figures add up to one."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.run_tests import counts
from tests.fidelity import describe, merge_exports


def test_counts_read_pytest_closing_lines_quiet_or_not() -> None:
    assert counts("....\n16 passed, 10 deselected in 10.66s\n") == {"passed": 16, "deselected": 10}
    loud = "stuff\n=========== 3 failed, 2545 passed, 10 skipped, 1 error in 1122.45s (0:18:42) ============\n"
    assert counts(loud) == {"failed": 3, "passed": 2545, "skipped": 10, "errors": 1}
    assert counts("interrupted before any summary\n") == {}


def test_fidelity_merges_each_planes_outcome_from_its_half(tmp_path: Path) -> None:
    embedded, real = tmp_path / "embedded.json", tmp_path / "real.json"
    embedded.write_text(json.dumps({
        "a[]": {"outcomes": {"embedded": "passed"}, "gap": None},
        "b[]": {"outcomes": {"embedded": "passed"}, "gap": "kept on purpose"},
        "c[]": {"outcomes": {"embedded": "passed"}, "gap": None},
        "d[]": {"outcomes": {"embedded": "passed"}, "gap": None},
    }))  # fmt: skip
    real.write_text(json.dumps({
        "a[]": {"outcomes": {"real": "passed"}, "gap": None},
        "b[]": {"outcomes": {"real": "passed"}, "gap": "kept on purpose"},
        "c[]": {"outcomes": {"real": "failed"}, "gap": None},
        "d[]": {"outcomes": {"real": "skipped"}, "gap": None},
    }))  # fmt: skip
    line = describe(merge_exports([embedded, real, tmp_path / "missing.json"]))
    assert line.startswith("control-plane fidelity: 1/3 statements identical")
    assert line.endswith("1 documented differences (docs/GAPS.md), 1 failing")
