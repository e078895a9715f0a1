"""dops.domain.names and dops.domain.labels (pure, table-driven).

Aspects covered:
- generated names: DNS-1123, short enough for Job names, unique for distinct entropy, newest-first name order,
  the encoded instant round-trips exactly (microseconds), operator slugs.
- doc ids: `name` and `namespace/name`; invalid ids rejected with a message naming the rule.
- label values: valid values kept, others hashed deterministically into valid values; mirror labels.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from dops.api import constants as c
from dops.domain import labels, names

UTC = dt.UTC
T0 = dt.datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("operator", "slug"),
    [
        ("@dops/examples/count", "count"),
        ("@voxel51/utils/Compute_Metadata", "compute-metadata"),
        ("py:my.module:do_it", "do-it"),
        ("@x/y/___", ""),
        ("@x/y/a-very-long-operator-name-indeed", "a-very-long-oper"),
    ],
)
def test_operator_slug(operator: str, slug: str) -> None:
    assert names.operator_slug(operator) == slug


def test_generated_names_are_dns1123_short_and_decode_exactly() -> None:
    for operator in ("@dops/examples/count", "@x/y/___", "py:a.b:c"):
        name = names.new_operation_name(operator, T0, os.urandom(8))
        assert names.is_dns1123_label(name), name
        assert len(name) <= 40
        assert names.name_time(name) == T0


def test_generated_names_sort_newest_first() -> None:
    times = [T0 + dt.timedelta(microseconds=i) for i in (0, 1, 2, 1000, 10**6, 10**9)]
    generated = [names.new_operation_name("@a/b/c", t, os.urandom(8)) for t in times]
    assert sorted(generated) == list(reversed(generated))


def test_generated_names_differ_by_entropy_at_the_same_instant() -> None:
    a = names.new_operation_name("@a/b/c", T0, b"\x00\x00\x00\x01")
    b = names.new_operation_name("@a/b/c", T0, b"\x00\x00\x00\x02")
    assert a != b and names.name_time(a) == names.name_time(b) == T0


def test_name_generation_needs_entropy() -> None:
    with pytest.raises(ValueError, match="entropy"):
        names.new_operation_name("@a/b/c", T0, b"\x00")


@pytest.mark.parametrize("name", ["example-echo", "dop-123", "x", "UPPER", "dop-0000000000"])
def test_name_time_is_none_for_foreign_names(name: str) -> None:
    assert names.name_time(name) is None


@pytest.mark.parametrize(
    ("doc_id", "expected"),
    [
        ("op-1", ("home", "op-1")),
        ("other/op-1", ("other", "op-1")),
        ("a.b.c", ("home", "a.b.c")),
    ],
)
def test_split_doc_id(doc_id: str, expected: tuple[str, str]) -> None:
    assert names.split_doc_id(doc_id, "home") == expected


@pytest.mark.parametrize("bad", ["", "Op", "op_1", "-op", "a/b/c", "Ns/op", None, 12, "x" * 254, "op-"])
def test_split_doc_id_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match=r"invalid|DNS-1123"):
        names.split_doc_id(bad, "home")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("queued", True),
        ("abc123", True),
        ("a.b-c_d", True),
        ("", True),
        ("-a", False),
        ("a/b", False),
        ("@dops/examples/count", False),
        ("x" * 63, True),
        ("x" * 64, False),
    ],
)
def test_label_value_validity(value: str, valid: bool) -> None:
    assert labels.is_valid_label_value(value) is valid
    mapped = labels.label_value(value)
    assert labels.is_valid_label_value(mapped)
    assert (mapped == value) is valid


def test_hashes_are_deterministic_and_distinct() -> None:
    assert labels.label_value("a/b") == labels.label_value("a/b") != labels.label_value("a/c")
    assert labels.operator_label_value("@dops/examples/echo").startswith("h.")


def test_mirror_labels() -> None:
    spec = {"operator": "@a/b/c", "delegationTarget": "gpu-pool", "datasetId": "64f0c0ffee"}
    assert labels.mirror_labels(spec, "queued") == {
        c.MANAGED_BY_LABEL: "dops",
        c.OPERATOR_LABEL: labels.operator_label_value("@a/b/c"),
        c.TARGET_LABEL: "gpu-pool",
        c.DATASET_ID_LABEL: "64f0c0ffee",
        c.RUN_STATE_LABEL: "queued",
    }
    assert labels.mirror_labels({"operator": "@a/b/c"}) == {
        c.MANAGED_BY_LABEL: "dops",
        c.OPERATOR_LABEL: labels.operator_label_value("@a/b/c"),
    }


def test_labels_out_of_date() -> None:
    spec = {"operator": "@a/b/c"}
    current = labels.mirror_labels(spec, "queued")
    obj = {"metadata": {"labels": {**current, c.NAME_ORDER_LABEL: "queued-at"}}, "spec": spec}
    assert labels.labels_out_of_date({**obj, "status": {"runState": "queued"}}) == {}
    assert labels.labels_out_of_date({**obj, "status": {"runState": "running"}}) == {c.RUN_STATE_LABEL: "running"}
    assert labels.labels_out_of_date({**obj, "status": {}}) == {c.RUN_STATE_LABEL: None}


@pytest.mark.parametrize(
    ("mode", "selectable", "resolved", "mirrored"),
    [
        ("auto", True, "never", False),  # the server selects by status.runState: no label (issue 15)
        ("auto", False, "always", True),  # it cannot: the label does that job
        ("auto", None, "always", True),  # unknown: the safe side
        ("always", True, "always", True),
        ("never", False, "never", False),
    ],
)
def test_run_state_label_modes(mode: str, selectable: bool | None, resolved: str, mirrored: bool) -> None:
    assert labels.resolve_run_state_label(mode, selectable) == resolved
    assert labels.mirrors_run_state(resolved) is mirrored


def test_labels_without_the_run_state_mirror() -> None:
    spec = {"operator": "@a/b/c"}
    current = labels.mirror_labels(spec)
    obj = {"metadata": {"labels": {**current, c.RUN_STATE_LABEL: "queued"}}, "spec": spec}
    assert labels.labels_out_of_date({**obj, "status": {"runState": "running"}}, run_state=False) == {
        c.RUN_STATE_LABEL: None
    }
    assert labels.run_state_label_out_of_date({c.RUN_STATE_LABEL: "queued"}, "running", run_state=True)
    assert not labels.run_state_label_out_of_date({}, "running", run_state=False)


def test_run_state_label_setting() -> None:
    from dops.domain.settings import ConfigurationError, OperatorSettings

    assert OperatorSettings.from_env({"DOPS_RUN_STATE_LABEL": "Never"}).run_state_label == "never"
    assert OperatorSettings.from_env({}).run_state_label == "auto"
    with pytest.raises(ConfigurationError, match="DOPS_RUN_STATE_LABEL must be one of auto, always, never"):
        OperatorSettings.from_env({"DOPS_RUN_STATE_LABEL": "sometimes"})
