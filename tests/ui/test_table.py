"""The dashboard's table rules without a cluster: rows, filters, counts, pages, facets, timeline, and speed."""

from __future__ import annotations

from typing import Any

import pytest

from dops.ui.table import FilterError, Filters, facets, parse_int, row_of, select, target_counts, timeline

JSON = dict[str, Any]


def op(name: str, state: str = "queued", *, queued: str = "2026-01-01T00:00:00Z", **spec: Any) -> JSON:
    return {
        "metadata": {"name": name, "namespace": spec.pop("namespace", "ns"), "creationTimestamp": queued},
        "spec": {"operator": "@dops/examples/echo", **spec},
        "status": {"runState": state, "queuedAt": queued, "progress": spec.pop("progress", None) or {}},
    }


def rows(*objs: JSON) -> list[Any]:
    return [row_of(o) for o in objs]


@pytest.mark.parametrize(
    ("obj", "field", "expected"),
    [
        (op("a", label="Nice"), "label", "Nice"),
        (op("a"), "label", "@dops/examples/echo"),  # no label: the operator, as the service shows it
        (op("a"), "target", "default"),
        (op("a", delegationTarget="gpu"), "target", "gpu"),
        ({"metadata": {"name": "a", "namespace": "n"}, "status": {}}, "state", "pending"),
        ({**op("a"), "status": {"runState": "running", "progress": {"progress": 0.25}}}, "progress", 0.25),
        ({**op("a"), "status": {"runState": "running", "progress": {"progress": 7}}}, "progress", 1.0),
        ({**op("a"), "status": {"runState": "running", "progress": {"progress": "x"}}}, "progress", None),
        (op("a", context={"dataset_name": "quickstart"}), "dataset", "quickstart"),
    ],
)
def test_rows(obj: JSON, field: str, expected: Any) -> None:
    assert getattr(row_of(obj), field) == expected


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({}, ["c", "b", "a"]),  # newest first
        ({"state": "failed"}, ["b"]),
        ({"operator": "@x/y"}, ["c"]),
        ({"target": "gpu"}, ["a"]),
        ({"label": "NIGHT"}, ["b"]),  # contains, case-insensitive
        ({"q": "gpu"}, ["a"]),  # the search box matches name, label, operator, target, dataset
        ({"q": "nightly b"}, ["b"]),  # every word must match
        ({"q": "zzz"}, []),
        ({"archived": "1"}, ["d", "c", "b", "a"]),
        ({"dataset": "ds"}, ["c"]),
    ],
)
def test_filters(query: dict[str, str], names: list[str]) -> None:
    table = rows(
        op("a", "completed", queued="2026-01-01T00:00:01Z", delegationTarget="gpu"),
        op("b", "failed", queued="2026-01-01T00:00:02Z", label="Nightly"),
        op("c", "running", queued="2026-01-01T00:00:03Z", operator="@x/y", context={"dataset_name": "ds"}),
        op("d", "completed", queued="2026-01-01T00:00:04Z", archived=True),
    )
    assert [r.name for r in select(table, Filters.from_query(query)).rows] == names


def test_counts_ignore_the_state_filter_but_not_the_others() -> None:
    table = rows(op("a", "failed"), op("b", "failed", delegationTarget="gpu"), op("c", "running"))
    page = select(table, Filters(state="running", target="default"))
    assert [r.name for r in page.rows] == ["c"]
    assert page.counts == {"queued": 0, "scheduled": 0, "running": 1, "completed": 0, "failed": 1}
    assert page.total == 1


@pytest.mark.parametrize(
    ("count", "page", "size", "expected"),
    [(0, 1, 50, (1, 1, 0)), (120, 1, 50, (1, 3, 50)), (120, 3, 50, (3, 3, 20)), (120, 9, 50, (3, 3, 20))],
)
def test_pages(count: int, page: int, size: int, expected: tuple[int, int, int]) -> None:
    table = rows(*(op(f"o{i:04d}", queued=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z") for i in range(count)))
    result = select(table, Filters(), page, size)
    assert (result.page, result.pages, len(result.rows)) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [({"state": "bogus"}, 'unknown state "bogus"')],
)
def test_bad_filters_are_one_line(query: dict[str, str], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        Filters.from_query(query)


def test_parse_int() -> None:
    assert parse_int(None, 50, 1, 500, "size") == 50
    assert parse_int("9999", 50, 1, 500, "size") == 500
    with pytest.raises(FilterError, match='page must be a whole number, not "-1"'):
        parse_int("-1", 1, 1, 10, "page")


def test_facets_and_target_counts() -> None:
    table = rows(op("a", delegationTarget="gpu"), op("b", "running", delegationTarget="gpu"), op("c", namespace="x"))
    assert facets(table)["targets"] == ["default", "gpu"]
    assert facets(table)["namespaces"] == ["ns", "x"]
    assert target_counts(table, "ns", "gpu")["queued"] == 1 and target_counts(table, "ns", "gpu")["running"] == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            {
                "runState": "completed",
                "queuedAt": "2026-01-01T00:00:00Z",
                "scheduledAt": "2026-01-01T00:00:01Z",
                "startedAt": "2026-01-01T00:00:03Z",
                "completedAt": "2026-01-01T00:00:10Z",
            },
            [("queued", 1.0), ("scheduled", 2.0), ("running", 7.0), ("completed", None)],
        ),
        (
            {"runState": "failed", "queuedAt": "2026-01-01T00:00:00Z", "failedAt": "2026-01-01T00:00:05Z"},
            [("queued", 5.0), ("scheduled", None), ("running", None), ("failed", None)],  # cancelled while queued
        ),
        (
            {"runState": "queued", "queuedAt": "2026-01-01T00:00:00Z"},
            [("queued", None), ("scheduled", None), ("running", None), ("finished", None)],
        ),
    ],
)
def test_timeline(status: JSON, expected: list[tuple[str, float | None]]) -> None:
    assert [(t["phase"], t["seconds"]) for t in timeline(status)] == expected


def test_a_page_of_ten_thousand_operations() -> None:
    """Search and page over 10,000 rows (how fast: scripts/bench_ui.py prints it; tests never time)."""
    table = rows(
        *(
            op(
                f"o{i:05d}",
                ["queued", "running", "completed"][i % 3],
                queued=f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
            )
            for i in range(10_000)
        )
    )
    page = select(table, Filters(search="o09"), 3, 50)
    assert page.total == 1000 and len(page.rows) == 50
    assert all("o09" in row.name for row in page.rows)


def test_the_page_needs_nothing_but_this_server() -> None:
    """Offline: the shipped page, script and style name no other host (no CDN, no web fonts)."""
    from importlib import resources

    static = resources.files("dops.ui") / "static"
    names = sorted(p.name for p in static.iterdir())
    assert names == ["app.css", "app.js", "index.html"]
    for name in names:
        text = (static / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
