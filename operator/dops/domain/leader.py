"""Leader election decisions (pure): who may reconcile, judged from a coordination.k8s.io/v1 Lease.

Why: the chart runs two operator replicas so that a lost node does not stop admissions for minutes,
and two operators writing the same operations would admit twice and race each other's status writes.
Exactly one replica (the Lease's holder) reconciles; the other stands by and takes over once the
holder stops renewing. The rules follow client-go's `leaderelection` package:

- expiry is judged on *this* process's monotonic clock, from the moment it last saw the Lease record
  change (`observed_at`), never from the holder's `renewTime` (another machine's wall clock);
- a holder renews every retry period and must step down when it could not renew for the renew
  deadline, which is shorter than the lease duration: it stops writing before anyone else may take over;
- a holder that sees another identity in the Lease steps down at once;
- every write of the Lease is a compare-and-set on its resourceVersion (done by `dops.k8s.lease`).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
# client-go's defaults (kube-controller-manager, controller-runtime): lease 15 s, renew deadline 10 s, retry 2 s.
DEFAULT_LEASE_DURATION = 15
DEFAULT_RENEW_DEADLINE = 10
DEFAULT_RETRY_PERIOD = 2
# client-go's JitterFactor: its validation demands renew deadline > 1.2 × retry period, so that a leader gets
# more than one attempt to renew before it must step down; dops keeps the same rule.
JITTER_FACTOR = 1.2


class Decision(enum.Enum):
    CREATE = "create"  # no Lease exists: create it, holding it
    RENEW = "renew"  # this identity holds it: renew it
    TAKE_OVER = "take-over"  # released or expired: compare-and-set it to this identity
    FOLLOW = "follow"  # another identity holds a live Lease: stand by


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says about its holder (the parts election needs)."""

    holder: str  # "" = nobody (released)
    duration_seconds: int
    transitions: int
    acquire_time: str | None
    renew_time: str | None
    resource_version: str

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=duration if isinstance(duration, int) and duration > 0 else DEFAULT_LEASE_DURATION,
            transitions=transitions if isinstance(transitions, int) and transitions >= 0 else 0,
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            resource_version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
        )

    def same_term(self, other: LeaseRecord | None) -> bool:
        """True when `other` is the same record (nobody renewed, released or took it over since)."""
        return other is not None and (self.holder, self.renew_time, self.transitions) == (
            other.holder,
            other.renew_time,
            other.transitions,
        )


def decide(
    record: LeaseRecord | None, identity: str, *, observed_at: float, now: float, leading: bool = False
) -> Decision:
    """What `identity` should do with the Lease as last read.

    `observed_at` is when this process first saw `record` as it is now (monotonic seconds); `now` the
    same clock. The Lease is expired when it has not changed for its `leaseDurationSeconds`.
    """
    if record is None:
        return Decision.CREATE
    if record.holder == identity:
        return Decision.RENEW
    if not record.holder:
        return Decision.TAKE_OVER
    if leading:
        return Decision.FOLLOW  # someone else holds it: a leader never steals it back (see step_down_reason)
    if now - observed_at >= record.duration_seconds:
        return Decision.TAKE_OVER
    return Decision.FOLLOW


def step_down_reason(
    *,
    identity: str,
    record: LeaseRecord | None,
    last_renewed: float,
    now: float,
    renew_deadline: float,
) -> str | None:
    """Why a leader must stop at once (None: it may go on). Called by a leader after every attempt.

    `record` is the Lease as last read (None when the read failed or the Lease is gone), `last_renewed`
    the monotonic time at which the last successful renew was *sent* (the conservative end).
    """
    if record is not None and record.holder and record.holder != identity:
        return f"the Lease is now held by {record.holder}"
    waited = now - last_renewed
    if waited >= renew_deadline:
        return f"could not renew the Lease for {waited:.1f} s (renew deadline {renew_deadline:g} s)"
    return None


def lease_spec(
    record: LeaseRecord | None, identity: str, now: dt.datetime, lease_duration: int, *, decision: Decision
) -> JSON:
    """The Lease spec that acquires (CREATE, TAKE_OVER) or renews (RENEW) it for `identity`."""
    stamp = micro_time(now)
    if decision is Decision.RENEW and record is not None:
        return {
            "holderIdentity": identity,
            "leaseDurationSeconds": lease_duration,
            "acquireTime": record.acquire_time or stamp,
            "renewTime": stamp,
            "leaseTransitions": record.transitions,
        }
    transitions = 0 if record is None else record.transitions + (1 if record.holder != identity else 0)
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": lease_duration,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def released_spec(record: LeaseRecord, now: dt.datetime) -> JSON:
    """The spec a holder writes when it stops on purpose (client-go's ReleaseOnCancel): no holder, so the
    standby takes over at its next attempt instead of waiting for the lease to expire."""
    stamp = micro_time(now)
    return {
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": record.transitions,
    }


def timing_problem(lease_duration: float, renew_deadline: float, retry_period: float) -> str | None:
    """Why the three durations cannot work together (client-go's checks), or None."""
    if retry_period <= 0:
        return f"the retry period must be positive, got {retry_period:g} s"
    if lease_duration <= renew_deadline:
        return (
            f"the lease duration ({lease_duration:g} s) must be longer than the renew deadline ({renew_deadline:g} s)"
        )
    if renew_deadline <= JITTER_FACTOR * retry_period:
        return (
            f"the renew deadline ({renew_deadline:g} s) must be longer than {JITTER_FACTOR:g} × the retry period "
            f"({retry_period:g} s)"
        )
    return None


def micro_time(when: dt.datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
