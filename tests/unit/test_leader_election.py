"""Issue 11 item 13: leader election decisions (dops.domain.leader), the write fence, the settings (no cluster)."""

from __future__ import annotations

import datetime as dt

import pytest

from dops.domain.leader import (
    Decision,
    LeaseRecord,
    decide,
    lease_spec,
    micro_time,
    released_spec,
    step_down_reason,
    timing_problem,
)
from dops.domain.settings import ConfigurationError, OperatorSettings
from dops.k8s.lease import NotLeader, WriteFence

ME, OTHER = "dops-a", "dops-b"


def record(holder: str = OTHER, duration: int = 15, transitions: int = 3, renew: str = "t1") -> LeaseRecord:
    return LeaseRecord(holder, duration, transitions, "t0", renew, "42")


@pytest.mark.parametrize(
    ("lease", "observed_at", "now", "leading", "expected"),
    [
        (None, 0.0, 0.0, False, Decision.CREATE),  # no Lease at all
        (record(holder=ME), 0.0, 100.0, False, Decision.RENEW),  # ours (e.g. a container restart in the same pod)
        (record(holder=ME), 0.0, 1.0, True, Decision.RENEW),
        (record(holder=""), 0.0, 0.0, False, Decision.TAKE_OVER),  # released by a leader that stopped cleanly
        (record(), 0.0, 14.9, False, Decision.FOLLOW),  # another holder, not expired
        (record(), 0.0, 15.0, False, Decision.TAKE_OVER),  # unchanged for its whole duration: expired
        (record(duration=5), 10.0, 14.0, False, Decision.FOLLOW),  # the record's own duration counts
        (record(duration=5), 10.0, 15.0, False, Decision.TAKE_OVER),
        (record(), 0.0, 100.0, True, Decision.FOLLOW),  # a leader never steals it back (it steps down instead)
    ],
)
def test_decide(lease: LeaseRecord | None, observed_at: float, now: float, leading: bool, expected: Decision) -> None:
    assert decide(lease, ME, observed_at=observed_at, now=now, leading=leading) is expected


@pytest.mark.parametrize(
    ("lease", "last_renewed", "now", "expected"),
    [
        (record(holder=ME), 0.0, 9.9, None),  # renewed recently enough
        (None, 0.0, 9.9, None),  # a failed read alone does not depose
        (None, 0.0, 10.0, "could not renew the Lease for 10.0 s (renew deadline 10 s)"),
        (record(holder=ME), 0.0, 12.0, "could not renew the Lease for 12.0 s (renew deadline 10 s)"),
        (record(holder=OTHER), 0.0, 0.1, f"the Lease is now held by {OTHER}"),  # stolen: at once
        (record(holder=""), 0.0, 1.0, None),  # released (by us, or nobody): the next renew takes it
    ],
)
def test_step_down_reason(lease: LeaseRecord | None, last_renewed: float, now: float, expected: str | None) -> None:
    got = step_down_reason(identity=ME, record=lease, last_renewed=last_renewed, now=now, renew_deadline=10)
    assert got == expected


NOW = dt.datetime(2026, 12, 6, 20, 0, 1, 250000, tzinfo=dt.UTC)


def test_lease_specs() -> None:
    stamp = "2026-12-06T20:00:01.250000Z"
    assert micro_time(NOW) == stamp
    created = lease_spec(None, ME, NOW, 15, decision=Decision.CREATE)
    assert created == {
        "holderIdentity": ME,
        "leaseDurationSeconds": 15,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": 0,
    }
    renewed = lease_spec(record(holder=ME), ME, NOW, 15, decision=Decision.RENEW)
    assert renewed["acquireTime"] == "t0" and renewed["renewTime"] == stamp and renewed["leaseTransitions"] == 3
    taken = lease_spec(record(holder=OTHER), ME, NOW, 15, decision=Decision.TAKE_OVER)
    assert taken["holderIdentity"] == ME and taken["acquireTime"] == stamp and taken["leaseTransitions"] == 4
    released = released_spec(record(holder=ME), NOW)
    assert "holderIdentity" not in released and released["leaseDurationSeconds"] == 1
    assert LeaseRecord.from_lease({"metadata": {"resourceVersion": "7"}, "spec": released}).holder == ""


def test_record_from_lease_and_same_term() -> None:
    lease = {
        "metadata": {"resourceVersion": "9"},
        "spec": {"holderIdentity": OTHER, "leaseDurationSeconds": 15, "renewTime": "t5", "leaseTransitions": 2},
    }
    got = LeaseRecord.from_lease(lease)
    assert (got.holder, got.duration_seconds, got.transitions, got.resource_version) == (OTHER, 15, 2, "9")
    assert got.same_term(LeaseRecord.from_lease(lease))
    assert not got.same_term(LeaseRecord.from_lease({**lease, "spec": {**lease["spec"], "renewTime": "t6"}}))
    assert not got.same_term(None)
    assert LeaseRecord.from_lease({"spec": {"leaseDurationSeconds": "x"}}).duration_seconds == 15


@pytest.mark.parametrize(
    ("durations", "problem"),
    [
        ((15, 10, 2), None),
        ((3, 2, 1), None),
        ((10, 10, 2), "must be longer than the renew deadline"),
        ((15, 2, 2), "must be longer than 1.2 × the retry period"),
    ],
)
def test_timing_problem(durations: tuple[int, int, int], problem: str | None) -> None:
    got = timing_problem(*durations)
    assert (got is None) if problem is None else (got is not None and problem in got)


def test_settings() -> None:
    default = OperatorSettings.from_env({})
    assert default.leader_election is False
    assert (default.lease_duration_seconds, default.lease_renew_deadline_seconds) == (15, 10)
    assert default.lease_retry_period_seconds == 2 and default.leader_election_lease_name == "dops-operator"
    chart = OperatorSettings.from_env(
        {
            "DOPS_LEADER_ELECTION": "true",
            "DOPS_LEADER_ELECTION_NAMESPACE": "dops-system",
            "DOPS_LEADER_ELECTION_LEASE_NAME": "dops-operator",
            "DOPS_LEADER_ELECTION_IDENTITY": "dops-7f9-abcde",
            "DOPS_LEASE_DURATION_SECONDS": "30",
            "DOPS_LEASE_RENEW_DEADLINE_SECONDS": "20",
            "DOPS_LEASE_RETRY_PERIOD_SECONDS": "4",
        }
    )
    assert chart.leader_election and chart.leader_election_namespace == "dops-system"
    assert (chart.lease_duration_seconds, chart.lease_renew_deadline_seconds, chart.lease_retry_period_seconds) == (
        30,
        20,
        4,
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DOPS_LEADER_ELECTION": "maybe"}, 'DOPS_LEADER_ELECTION must be true or false, got "maybe"'),
        ({"DOPS_LEADER_ELECTION_NAMESPACE": "a,b"}, "DOPS_LEADER_ELECTION_NAMESPACE must be a namespace name"),
        ({"DOPS_LEADER_ELECTION_LEASE_NAME": "Not_A_Name"}, "DOPS_LEADER_ELECTION_LEASE_NAME must be a Kubernetes"),
        ({"DOPS_LEASE_RETRY_PERIOD_SECONDS": "0"}, "DOPS_LEASE_RETRY_PERIOD_SECONDS must be an integer ≥ 1"),
        ({"DOPS_LEASE_RENEW_DEADLINE_SECONDS": "15"}, "do not fit together: the lease duration (15 s) must be"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OperatorSettings.from_env(environ)


def test_write_fence() -> None:
    """The fence is open until the deadline the last renew set, on the monotonic clock; closing it is at once."""
    now = {"t": 100.0}
    fence = WriteFence(clock=lambda: now["t"])
    with pytest.raises(NotLeader, match="has not acquired the Lease"):
        fence.check("POST", "/x")
    fence.open_until(110.0)
    fence.check("PATCH", "/x")
    now["t"] = 110.0
    assert not fence.is_open  # the renew deadline passed without a renew: no write, even if nobody noticed
    fence.open_until(120.0)
    fence.close("lost the Lease: stolen")
    with pytest.raises(NotLeader, match="stolen"):
        fence.check("DELETE", "/x")
    assert WriteFence(always_open=True).is_open
