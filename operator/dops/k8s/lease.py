"""Lease-based leader election over coordination.k8s.io/v1, and the write fence that enforces it.

Why: with two operator replicas (the chart's default, so that a lost node does not stop admissions for
minutes), exactly one may write. `LeaderElector` runs client-go's algorithm (decisions in
`dops.domain.leader`): read the Lease, then create, renew or take it over with a compare-and-set on its
resourceVersion; a standby retries every retry period and takes over once the Lease has not changed for
its duration. A leader that sees another holder, or could not renew within the renew deadline, is
deposed at once.

"At once" is enforced twice: the elector calls `on_deposed` (the runtime stops its work queue and
scheduler), and, before that can even run, every write through a `FencedKubeClient` checks the
`WriteFence`, which is open only until `last successful renew + renew deadline` on this process's
monotonic clock. So a leader whose event loop stalls, or whose renew hangs, stops writing on time
anyway: the renew deadline is shorter than the lease duration, so nobody else can have taken over
before the fence closed. (A write already on the wire when the fence closes still lands; that is the
margin client-go also leaves between renew deadline and lease duration.)
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..api.times import utcnow
from ..domain.leader import (
    Decision,
    LeaseRecord,
    decide,
    lease_spec,
    released_spec,
    step_down_reason,
)
from .client import KubeClient
from .config import ClusterConfig
from .errors import AlreadyExists, ApiError, Conflict, NotFound

log = logging.getLogger("dops.operator.leader")

JSON = dict[str, Any]
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
READS = frozenset({"GET", "HEAD", "OPTIONS"})
# Jitter of a standby's attempts (client-go: up to JITTER_FACTOR, 120 %, meant for many candidates; dops runs two).
STANDBY_JITTER = 0.2


class NotLeader(ApiError):
    """A write was refused locally: this process does not hold the Lease (never sent to the API server)."""


class WriteFence:
    """Open while this process may write: until a monotonic deadline the elector moves on every renew."""

    def __init__(self, *, always_open: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until = float("inf") if always_open else float("-inf")
        self.reason = "this replica has not acquired the Lease"

    def open_until(self, deadline: float) -> None:
        with self._lock:
            self._until = deadline

    def close(self, reason: str) -> None:
        with self._lock:
            self._until = float("-inf")
            self.reason = reason

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._clock() < self._until

    def check(self, method: str, path: str) -> None:
        """Raise `NotLeader` unless a write may be sent now."""
        if not self.is_open:
            raise NotLeader(f"not the leader: {self.reason}; write refused", method=method, path=path)


class FencedKubeClient(KubeClient):
    """A `KubeClient` whose writes (every verb but GET/HEAD/OPTIONS) pass the fence first."""

    def __init__(self, config: ClusterConfig, fence: WriteFence, **options: Any) -> None:
        super().__init__(config, **options)
        self.fence = fence

    def request(self, method: str, path: str, **options: Any) -> Any:
        if method.upper() not in READS:
            self.fence.check(method, path)
        return super().request(method, path, **options)


class LeaseClient:
    """GET, create and compare-and-set replace of one Lease (Conflict when its resourceVersion moved)."""

    def __init__(self, client: KubeClient, namespace: str, name: str) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.collection = LEASES.format(namespace=namespace)

    def get(self) -> JSON | None:
        try:
            lease: JSON = self.client.request("GET", f"{self.collection}/{self.name}")
        except NotFound:
            return None
        return lease

    def create(self, spec: Mapping[str, Any]) -> JSON:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": dict(spec),
        }
        created: JSON = self.client.request("POST", self.collection, body=body)
        return created

    def replace(self, resource_version: str, spec: Mapping[str, Any]) -> JSON:
        """PUT with metadata.resourceVersion: the API server refuses it (409) if anyone wrote in between."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": resource_version},
            "spec": dict(spec),
        }
        replaced: JSON = self.client.request("PUT", f"{self.collection}/{self.name}", body=body)
        return replaced


class LeaderElector:
    """Acquires and renews the Lease every retry period; calls back on every transition.

    `on_elected()` runs when this process becomes the leader (the fence is open by then);
    `on_deposed(reason)` when it stops being the leader (the fence is closed by then). Both run on the
    event loop and must not block.
    """

    def __init__(
        self,
        leases: LeaseClient,
        identity: str,
        *,
        fence: WriteFence,
        lease_duration: int,
        renew_deadline: int,
        retry_period: int,
        on_elected: Callable[[], None],
        on_deposed: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.identity = identity
        self.fence = fence
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.clock = clock
        self.leading = False
        self.holder = ""  # the holder as last seen ("" = none or unknown)
        self.last_renewed = float("-inf")
        self.elected_at: float | None = None
        self._record: LeaseRecord | None = None
        self._observed_at = clock()
        self._reported_holder: str | None = None
        self._reported_error = ""
        self.last_contact = clock()  # the last time the Lease API answered a read (health: a silent standby)

    @property
    def where(self) -> str:
        return f"Lease {self.leases.namespace}/{self.leases.name}"

    async def run(self) -> None:
        """Try to acquire or renew every retry period (a standby with jitter, as client-go) until cancelled."""
        while True:
            try:
                await asyncio.wait_for(self.attempt(), timeout=self.renew_deadline)
            except TimeoutError:
                self._failed("the Lease API did not answer within the renew deadline")
            if self.leading:
                # Never sleep past the moment the renew deadline would depose us without a try.
                left = self.last_renewed + self.renew_deadline - self.clock()
                await asyncio.sleep(max(0.05, min(self.retry_period, left)))
            else:
                await asyncio.sleep(self._standby_delay())

    async def attempt(self) -> None:
        """One round: read the Lease, then create, renew or take it over, or follow."""
        sent = self.clock()
        try:
            lease = await asyncio.to_thread(self.leases.get)
        except ApiError as exc:
            self._failed(f"reading the Lease failed: {exc}")
            return
        self.last_contact = self.clock()
        self._reported_error = ""
        record = LeaseRecord.from_lease(lease) if lease is not None else None
        self._observe(record)
        if self.leading:
            reason = step_down_reason(
                identity=self.identity,
                record=record,
                last_renewed=self.last_renewed,
                now=self.clock(),
                renew_deadline=self.renew_deadline,
            )
            if reason is not None:
                self._depose(reason)
                return
        decision = decide(record, self.identity, observed_at=self._observed_at, now=self.clock(), leading=self.leading)
        if decision is Decision.FOLLOW:
            assert record is not None
            self._report_follow(record)
            return
        spec = lease_spec(record, self.identity, utcnow(), self.lease_duration, decision=decision)
        try:
            if decision is Decision.CREATE:
                written = await asyncio.to_thread(self.leases.create, spec)
            else:
                assert record is not None
                written = await asyncio.to_thread(self.leases.replace, record.resource_version, spec)
        except (Conflict, AlreadyExists):
            # Someone else wrote the Lease between our read and our write: the next round reads it again.
            self._failed("another replica wrote the Lease at the same time", quiet=True)
            return
        except ApiError as exc:
            self._failed(f"writing the Lease failed: {exc}")
            return
        previous = record.holder if record is not None else ""
        self.last_renewed = sent
        self.fence.open_until(sent + self.renew_deadline)
        self._observe(LeaseRecord.from_lease(written))
        if not self.leading:
            self.leading = True
            self.elected_at = self.clock()
            self._reported_holder = None
            took_over = f"; took over from {previous}" if previous and previous != self.identity else ""
            log.info("became the leader (%s, identity %s%s)", self.where, self.identity, took_over)
            self.on_elected()

    async def release(self) -> None:
        """Give the Lease up on purpose (clean stop), so that a standby takes over at its next attempt."""
        if not self.leading:
            return
        self._depose("the operator is stopping", level=logging.INFO)
        try:
            lease = await asyncio.to_thread(self.leases.get)
            if lease is None:
                return
            record = LeaseRecord.from_lease(lease)
            if record.holder != self.identity:
                return
            await asyncio.to_thread(self.leases.replace, record.resource_version, released_spec(record, utcnow()))
            log.info("released the %s", self.where)
        except ApiError as exc:
            log.warning("could not release the %s (a standby takes over once it expires): %s", self.where, exc)

    # ------------------------------------------------------------------------------------ internals
    def _standby_delay(self) -> float:
        """A retry period with a little jitter, but never past the moment the holder's Lease expires: the
        standby then takes over within the lease duration (plus at most one retry period, the time it may
        take to see the holder's last renew) of the holder's death, not a further jittered period later."""
        delay = self.retry_period * (1 + random.random() * STANDBY_JITTER)
        record = self._record
        if record is not None and record.holder and record.holder != self.identity:
            expires = self._observed_at + record.duration_seconds - self.clock()
            delay = min(delay, max(0.05, expires + 0.01))
        return delay

    def _observe(self, record: LeaseRecord | None) -> None:
        if record is None or not record.same_term(self._record):
            self._observed_at = self.clock()
        self._record = record
        self.holder = record.holder if record is not None else ""

    def _failed(self, why: str, quiet: bool = False) -> None:
        if not self.leading:
            # A standby that cannot use the Lease (RBAC, a missing namespace, an outage) says so, once per error.
            if quiet or why == self._reported_error:
                log.debug("%s: %s", self.where, why)
            else:
                self._reported_error = why
                log.warning(
                    "cannot use the %s (standing by, retrying every %d s): %s", self.where, self.retry_period, why
                )
            return
        reason = step_down_reason(
            identity=self.identity,
            record=None,
            last_renewed=self.last_renewed,
            now=self.clock(),
            renew_deadline=self.renew_deadline,
        )
        if reason is not None:
            self._depose(f"{reason}; last error: {why}")
        else:
            log.warning("renewing the %s failed (retrying until the renew deadline): %s", self.where, why)

    def _depose(self, reason: str, level: int = logging.ERROR) -> None:
        self.fence.close(f"lost the {self.where}: {reason}")  # first: no write gets out from here on
        self.leading = False
        self.elected_at = None
        self._reported_holder = None
        log.log(
            level,
            "stopped leading (%s, identity %s): %s; reconciles and admissions stopped",
            self.where,
            self.identity,
            reason,
        )
        self.on_deposed(reason)

    def _report_follow(self, record: LeaseRecord) -> None:
        if record.holder != self._reported_holder:
            self._reported_holder = record.holder
            log.info("standing by: the %s is held by %s (identity %s)", self.where, record.holder, self.identity)
