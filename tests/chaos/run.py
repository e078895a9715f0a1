"""The chaos suite's engine: submit hundreds of operations, break things for a while, then count.

Why: the failure modes of issue 11 (start-up that half-fails, operations stuck forever, ghosts after a
relist, two Jobs for one operation, one API error failing a healthy operation, cancels mislabelled)
never show in a test that breaks one thing at a time. This run breaks many things at once, as a cluster
does, and then checks the invariants that must hold whatever happened (`Report.problems()`):

- every operation is terminal after quiescence (an operation the harness deleted: gone), and no Job is
  still active;
- no operation ever had two active Jobs at once (from a watch on Jobs);
- no operation failed unless something was done to *it* that may fail it (its pod, Job or itself deleted,
  or it was cancelled) or it fails by design; operator kills, API errors and outages, watch expiry and
  drops, and re-queues must never fail an operation;
- every failure has a reason (the `Succeeded=False` condition's reason and a message), every completion
  its result (exactly the one its kind returns);
- `maxConcurrent` was never exceeded (operations scheduled or running per target, from a watch).
Also printed, not asserted: Jobs active per target beyond `maxConcurrent` (a finished operation's Job
lingers while its worker exits), designed failures with another reason, cancels not labelled Cancelled,
the standby's takeover time.

How: an embedded control plane (every controller, the process kubelet) in this process; the operator as a
subprocess in its own process group (so `kill -9` is real), two of them (leader and standby, short
leases) when the operator's settings have leader election. Operations go to three targets:
`chaos-proc` runs the real worker as a process (the dops image maps to `python -m tests.chaos.worker`);
`chaos-sim` runs simulated pods (no process, cheap) for which this harness plays the worker's API
protocol (claim, progress, outcome, each write fenced by the pod's name) and then ends the simulated
container with the worker's exit code; `chaos-nowhere` (only when DelegationTargets have
`startDeadlineSeconds`) has pods no node accepts, so only the start deadline ends its operations. A
chaos thread injects faults at random for `chaos_seconds` (kill -9 of the leader, restarted with the
same or a new identity, sometimes into an API error on its start-up listing; pod, Job and operation
deletions; 500/503/429 on chosen requests, through the emulator's fault hooks; 5-15 s outages of status
writes; watch expiry and drops; cancels; re-queues of running operations), then the faults stop and the
run waits for quiescence: `quiesce_seconds`, longer only while operations keep settling (slow is not stuck;
an operation that never settles is). Every fact is taken from watches on operations, Jobs and pods,
started before anything is submitted. The seed fixes the plan and the sequence of fault choices; timing
still varies from run to run.

On the real control plane (`plane="real"`: upstream etcd, kube-apiserver, controller manager and scheduler
from tests/realcluster, and one node agent running the simulated pods, tests/e2e/realplane.py) the same run
has no fault hooks to call: its API faults are the ones a real cluster has, the kube-apiserver killed with
`kill -9` and started again (connections refused for seconds, every watch dropped, resumed watches 410 Gone)
and etcd frozen for a few seconds (requests hang); the rest (operator kills, deletions, cancels, re-queues)
is the same. Every operation runs on simulated pods there, and the operator stops their Jobs after a short
exit grace instead of this harness ending their containers. The invariants are the same.

Settings (environment, all optional): DOPS_CHAOS_SEED (printed; set it to replay a run's choices),
DOPS_CHAOS_OPS (300), DOPS_CHAOS_SECONDS (90), DOPS_CHAOS_QUIESCE_SECONDS (75),
DOPS_CHAOS_PROCESS_SHARE (0.3: share of operations run by real worker processes),
DOPS_CHAOS_FAULT_INTERVAL (1.0: mean seconds between faults), DOPS_CHAOS_KILL_INTERVAL (15: mean
seconds between operator kills), DOPS_CHAOS_KEEP (a directory to keep logs in), DOPS_CHAOS_SOURCE (a
directory holding another `dops` package for the operator and the workers, e.g. an older commit's
`operator/` from `git archive`: does the suite catch what that version gets wrong?).

Run alone: `make chaos` (embedded) or `make chaos-real`, or
`python -m tests.chaos.run [--plane embedded|real] [--ops N] [--seconds S] [--seed N]`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

REPO = Path(__file__).resolve().parent.parent.parent
JSON = dict[str, Any]
GROUP = "/apis/dops.io/v1alpha1"
NAMESPACE = "chaos"
SIM_TARGET = "chaos-sim"
PROC_TARGET = "chaos-proc"
NOWHERE_TARGET = "chaos-nowhere"  # pods that never get a node: only a start deadline ends their operations
ACTIVE_STATES = ("scheduled", "running")
TERMINAL_STATES = ("completed", "failed")
OPERATION_ANNOTATION = "dops.io/operation"
SIMULATE_ANNOTATION = "dops.emulator/simulate"
TRANSIENT_CODES = (429, 500, 502, 503, 504)
JSON_PATCH = "application/json-patch+json"
QUIESCE_STALL_SECONDS = 30.0  # past the quiescence budget: how long no operation may settle before giving up
QUIESCE_CAP_FACTOR = 3.0  # and never longer than this many budgets in all
WORKER_PATIENCE = 300.0  # seconds the harness's worker retries a claim or an outcome (a worker outlasts outages)
# The fake worker writes as the dops worker does (field manager `dops`): the operator tells a worker's own
# `failed` from a cancel by someone else by the status write's field manager (docs/operator.md).
AS_WORKER = {"fieldManager": "dops"}
BACKGROUND = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
# Faults that may legitimately fail the operation they touch; every other fault must leave outcomes alone.
DISRUPTIVE = ("delete-pod", "delete-job", "cancel", "delete-op")
KINDS = ("fast", "progress", "sleep", "fail")
KIND_WEIGHTS = (0.3, 0.25, 0.25, 0.2)
DESIGNED_FAILURES = ("fail", "stranded")  # "stranded": on NOWHERE_TARGET, fails when its start deadline passes
STRANDED_SHARE = 0.03
START_DEADLINE_SECONDS = 8
PLANES = ("embedded", "real")
WORKER_ACCOUNT = "dops-worker"  # the operator's default worker ServiceAccount (OperatorSettings.worker_service_account)


# ==================================================================================== configuration


@dataclasses.dataclass(frozen=True)
class ChaosConfig:
    seed: int
    operations: int = 300
    chaos_seconds: float = 90.0
    quiesce_seconds: float = 75.0
    process_share: float = 0.3
    fault_interval: float = 1.0
    kill_interval: float = 15.0
    sim_max_concurrent: int = 8
    proc_max_concurrent: int = 4
    keep: str = ""
    source: str = ""
    plane: str = "embedded"  # or "real": the upstream control plane and a node agent (tests/e2e/realplane.py)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> ChaosConfig:
        def number(name: str, default: float, kind: Callable[[str], Any] = float) -> Any:
            raw = (environ.get(name) or "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise SystemExit(f"{name} must be a number, got {raw!r}") from None
            if value < 0:
                raise SystemExit(f"{name} must not be negative, got {raw!r}")
            return value

        values: dict[str, Any] = {
            "seed": number("DOPS_CHAOS_SEED", random.SystemRandom().randrange(1, 1_000_000), int),
            "operations": number("DOPS_CHAOS_OPS", cls.operations, int),
            "chaos_seconds": number("DOPS_CHAOS_SECONDS", cls.chaos_seconds),
            "quiesce_seconds": number("DOPS_CHAOS_QUIESCE_SECONDS", cls.quiesce_seconds),
            "process_share": min(1.0, number("DOPS_CHAOS_PROCESS_SHARE", cls.process_share)),
            "fault_interval": max(0.1, number("DOPS_CHAOS_FAULT_INTERVAL", cls.fault_interval)),
            "kill_interval": max(2.0, number("DOPS_CHAOS_KILL_INTERVAL", cls.kill_interval)),
            "keep": environ.get("DOPS_CHAOS_KEEP", ""),
            "source": environ.get("DOPS_CHAOS_SOURCE", ""),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("plane", cls.plane) not in PLANES:
            raise SystemExit(f"the control plane must be one of {', '.join(PLANES)}, got {values['plane']!r}")
        if values.get("plane") == "real":
            values["process_share"] = 0.0  # the node agent runs simulated pods only here (see ChaosRun._start_real)
        return cls(**values)

    def describe(self) -> str:
        make = "make chaos" if self.plane == "embedded" else "make chaos-real"
        return (
            f"{self.plane} control plane, seed {self.seed}, {self.operations} ops, {self.chaos_seconds:g} s of chaos, "
            f"quiescence within {self.quiesce_seconds:g} s (longer while operations keep settling), "
            f"{self.process_share:.0%} real worker processes "
            f"(replay: DOPS_CHAOS_SEED={self.seed} DOPS_CHAOS_OPS={self.operations} "
            f"DOPS_CHAOS_SECONDS={self.chaos_seconds:g} {make})"
        )


def now() -> str:
    """An RFC 3339 UTC timestamp, as the worker writes them."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"


# ==================================================================================== API access


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the control plane answers, and how to reach it: plain HTTP (embedded) or TLS as the admin (real)."""

    url: str
    ca_file: str = ""  # the cluster CA to trust (TLS only)
    cert: tuple[str, str] | None = None  # the admin's client certificate and key (TLS only)

    @property
    def name(self) -> str:
        return "real" if self.ca_file else "embedded"

    def session(self) -> requests.Session:
        session = requests.Session()
        if self.ca_file:
            session.trust_env = False  # REQUESTS_CA_BUNDLE must not override the cluster CA
            session.verify = self.ca_file
            session.cert = self.cert
        return session


class Api:
    """HTTP to the control plane; transient answers (429, 5xx, no answer) are retried for `patience` s.

    The faults this suite injects hit its own requests too, so every harness request goes through here.
    """

    def __init__(self, endpoint: Endpoint, patience: float = 60.0, stop: threading.Event | None = None) -> None:
        self.url = endpoint.url
        self.session = endpoint.session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.patience = patience
        self.stop = stop or threading.Event()  # once set, nothing is retried any more (the run is over)

    def close(self) -> None:
        self.session.close()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        patience: float | None = None,
    ) -> tuple[int, JSON]:
        deadline = time.monotonic() + (self.patience if patience is None else patience)
        delay = 0.1
        while True:
            try:
                response = self.session.request(
                    method,
                    self.url + path,
                    params=params,
                    data=None if body is None else json.dumps(body),
                    headers={"Content-Type": content_type},
                    timeout=30,
                )
                code = response.status_code
                try:
                    payload: JSON = response.json()
                except ValueError:
                    payload = {"message": response.text[:200]}
            except requests.RequestException as exc:
                code, payload = 0, {"message": str(exc)}
            if code not in (0, *TRANSIENT_CODES) or time.monotonic() > deadline or self.stop.is_set():
                return code, payload
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def must(self, method: str, path: str, body: Any = None, **kwargs: Any) -> JSON:
        code, payload = self.call(method, path, body, **kwargs)
        if code >= 300 or code == 0:
            raise AssertionError(f"{method} {path}: {code} {payload.get('message', payload)}")
        return payload


class Watch(threading.Thread):
    """List, then watch, one collection; relists after 410 Gone and reports what vanished meanwhile as DELETED.

    `on_events(events, relisted)` gets each watch event alone, as [(ADDED/MODIFIED/DELETED, obj)], and a relist
    whole, in one call (relisted=True): what vanished as DELETED, the rest as MODIFIED.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        path: str,
        on_events: Callable[[list[tuple[str, JSON]], bool], None],
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"chaos-watch{path}", daemon=True)
        self.api = Api(endpoint, patience=3600, stop=stop)  # a connection of its own
        self.path = path
        self.on_events = on_events
        self.stop = stop
        self.synced = threading.Event()
        self.relists = 0
        self._known: dict[str, JSON] = {}
        self._response: requests.Response | None = None

    def close(self) -> None:
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()

    def _relist(self) -> str:
        body = self.api.must("GET", self.path, patience=3600)
        listed = {item["metadata"]["uid"]: item for item in body.get("items") or []}
        vanished = [("DELETED", old) for uid, old in self._known.items() if uid not in listed]
        self.on_events(vanished + [("MODIFIED", item) for item in listed.values()], True)
        self._known = listed
        self.relists += 1
        self.synced.set()
        return str(body["metadata"]["resourceVersion"])

    def run(self) -> None:
        rv = ""
        while not self.stop.is_set():
            try:
                if not rv:
                    rv = self._relist()
                params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "5"}
                with self.api.session.get(
                    self.api.url + self.path, params=params, stream=True, timeout=(5, 30)
                ) as response:
                    self._response = response
                    if response.status_code == 410:
                        rv = ""
                        continue
                    if response.status_code != 200:
                        time.sleep(0.2)
                        continue
                    for line in response.iter_lines():
                        if self.stop.is_set():
                            return
                        if not line:
                            continue
                        event = json.loads(line)
                        kind, obj = event.get("type"), event.get("object") or {}
                        if kind == "ERROR":
                            if obj.get("code") == 410:
                                rv = ""
                            break
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if kind == "BOOKMARK":
                            continue
                        uid = obj["metadata"]["uid"]
                        if kind == "DELETED":
                            self._known.pop(uid, None)
                        else:
                            self._known[uid] = obj
                        self.on_events([(str(kind), obj)], False)
            except Exception:  # a dropped or closed stream (close() from another thread shows as anything)
                if self.stop.is_set():
                    break
                time.sleep(0.2)
            finally:
                self._response = None
        self.api.close()


# ==================================================================================== facts


@dataclasses.dataclass
class OpRecord:
    name: str
    kind: str
    target: str
    params: JSON
    expected: Any  # the result a completion must carry (for "fail": the message its error must contain)
    states: list[str] = dataclasses.field(default_factory=list)
    last: JSON = dataclasses.field(default_factory=dict)
    touches: list[str] = dataclasses.field(default_factory=list)  # every fault that touched it ("#12 api-500")
    disrupted: list[str] = dataclasses.field(default_factory=list)  # the faults that may fail it
    cancelled: bool = False
    requeued: bool = False
    deleted: bool = False  # this harness deleted it
    gone: bool = False  # a watch saw it go
    active_jobs: set[str] = dataclasses.field(default_factory=set)
    jobs_ever: set[str] = dataclasses.field(default_factory=set)
    double_jobs: list[str] = dataclasses.field(default_factory=list)
    live_pods: set[str] = dataclasses.field(default_factory=set)
    max_live_pods: int = 0
    seen: collections.deque[str] = dataclasses.field(default_factory=lambda: collections.deque(maxlen=12))

    @property
    def state(self) -> str:
        return str((self.last.get("status") or {}).get("runState") or "")


@dataclasses.dataclass
class Fault:
    id: int
    kind: str
    at: float
    detail: str
    ops: list[str]


class Quiescence:
    """When the wait for quiescence ends, judged from the set of unsettled operations seen at each look.

    Slow is not stuck: on a machine shared with other suites, workers start and reconciles run seconds late,
    and a queue behind a cap of 4 drains late. So past `budget` seconds the wait goes on while operations keep
    settling, and gives up once none has settled for `QUIESCE_STALL_SECONDS` (an operation that is really
    stuck never settles) or at `QUIESCE_CAP_FACTOR` budgets in all."""

    def __init__(self, budget: float, started: float, expected: int | None = None) -> None:
        self.deadline = started + budget
        self.cap = started + budget * QUIESCE_CAP_FACTOR
        self.expected = expected
        self.busy: set[str] | None = None
        self.progressed = started

    def verdict(self, busy: set[str], submitted: int, now: float) -> bool | None:
        """True: quiescent (nothing busy, all `expected` submitted); False: give up; None: look again later."""
        if self.busy is not None and self.busy - busy:  # some operation settled since the last look
            self.progressed = now
        self.busy = set(busy)
        if not busy and (self.expected is None or submitted >= self.expected):
            return True
        if now >= self.cap or (now >= self.deadline and now - self.progressed >= QUIESCE_STALL_SECONDS):
            return False
        return None


class Ledger:
    """Everything the watches saw, kept under one lock; updated by the watch threads, read at the end."""

    def __init__(self, caps: Mapping[str, int]) -> None:
        self.lock = threading.RLock()
        self.caps = dict(caps)
        self.ops: dict[str, OpRecord] = {}
        self.active_ops: dict[str, set[str]] = {t: set() for t in caps}
        self.max_active_ops: dict[str, int] = {t: 0 for t in caps}
        self.over_cap: list[str] = []
        self.over_cap_ops: set[str] = set()  # the operations active at the first violation: explained in the report
        self.jobs: dict[str, tuple[str, bool]] = {}  # Job name → (operation, active)
        self.max_active_jobs: dict[str, int] = {t: 0 for t in caps}
        self.max_active_jobs_at: dict[str, list[str]] = {t: [] for t in caps}  # the Jobs active at the maximum
        self.pods: dict[str, JSON] = {}  # pod name → last seen
        self.faults: list[Fault] = []
        self.on_pod: Callable[[str, JSON], None] | None = None

    # A relist is one snapshot of the server: its objects are applied first and the invariants judged after, on
    # the whole of it. Judged object by object (they come in name order), an operation admitted during the gap
    # would count beside one that ended during it but comes later in the list: a cap "exceeded" that never was.

    # -- operations
    def op_event(self, kind: str, obj: JSON) -> None:
        self.op_events([(kind, obj)])

    def op_events(self, events: list[tuple[str, JSON]], relisted: bool = False) -> None:
        with self.lock:
            targets = {target for kind, obj in events if (target := self._apply_op(kind, obj, relisted))}
            for target in sorted(targets):
                active = self.active_ops[target]
                self.max_active_ops[target] = max(self.max_active_ops[target], len(active))
                if len(active) > self.caps[target]:
                    self.over_cap.append(f"{target}: {len(active)} > {self.caps[target]} ({sorted(active)})")
                    if not self.over_cap_ops:
                        self.over_cap_ops = set(active)

    def _apply_op(self, kind: str, obj: JSON, relisted: bool) -> str | None:
        """Record one event of an operation; its target (None: not one of ours)."""
        name = obj["metadata"]["name"]
        rec = self.ops.get(name)
        if rec is None:
            return None
        active = self.active_ops[rec.target]
        if kind == "DELETED":
            rec.states.append("<deleted>")
            rec.gone = True
            active.discard(name)
            return rec.target
        rec.last = obj
        state = rec.state
        rv = obj["metadata"].get("resourceVersion")
        how = "relisted" if relisted else kind
        rec.seen.append(f"{time.strftime('%H:%M:%S')} {how} rv {rv} {state or '-'}")
        if state and (not rec.states or rec.states[-1] != state):
            rec.states.append(state)
        if state in ACTIVE_STATES:
            active.add(name)
        else:
            active.discard(name)
        return rec.target

    # -- Jobs
    def job_event(self, kind: str, obj: JSON) -> None:
        self.job_events([(kind, obj)])

    def job_events(self, events: list[tuple[str, JSON]], relisted: bool = False) -> None:
        with self.lock:
            owners = [owner for kind, obj in events if (owner := self._apply_job(kind, obj))]
            for rec in {rec.name: rec for rec in owners}.values():
                if len(rec.active_jobs) > 1:
                    rec.double_jobs.append(f"{sorted(rec.active_jobs)} active at once")
            for target in sorted({rec.target for rec in owners}):
                active_jobs = sorted(j for j, (op, on) in self.jobs.items() if on and self.ops[op].target == target)
                if len(active_jobs) > self.max_active_jobs[target]:
                    self.max_active_jobs[target] = len(active_jobs)
                    self.max_active_jobs_at[target] = [
                        f"{j} ({self.ops[self.jobs[j][0]].state or '?'})" for j in active_jobs
                    ]

    def _apply_job(self, kind: str, obj: JSON) -> OpRecord | None:
        """Record one event of a Job; the operation owning it (None: not one of ours)."""
        meta = obj["metadata"]
        owner = next(
            (r["name"] for r in meta.get("ownerReferences") or [] if r.get("kind") == "DelegatedOperation"), None
        )
        rec = self.ops.get(owner or "")
        if rec is None:
            return None
        conditions = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
        finished = conditions.get("Complete") == "True" or conditions.get("Failed") == "True"
        active = kind != "DELETED" and not meta.get("deletionTimestamp") and not finished
        self.jobs[meta["name"]] = (rec.name, active)
        rec.jobs_ever.add(meta["name"])
        if active:
            rec.active_jobs.add(meta["name"])
        else:
            rec.active_jobs.discard(meta["name"])
        return rec

    # -- pods
    def pod_events(self, events: list[tuple[str, JSON]], relisted: bool = False) -> None:
        for kind, obj in events:
            self.pod_event(kind, obj)

    def pod_event(self, kind: str, obj: JSON) -> None:
        meta = obj["metadata"]
        ref = str((meta.get("annotations") or {}).get(OPERATION_ANNOTATION) or "")
        op = ref.partition("/")[2]
        with self.lock:
            rec = self.ops.get(op)
            if rec is None:
                return
            phase = (obj.get("status") or {}).get("phase")
            if kind == "DELETED" or phase in ("Succeeded", "Failed"):
                rec.live_pods.discard(meta["name"])
                self.pods.pop(meta["name"], None)
            else:
                rec.live_pods.add(meta["name"])
                self.pods[meta["name"]] = obj
            rec.max_live_pods = max(rec.max_live_pods, len(rec.live_pods))
        if self.on_pod is not None:
            self.on_pod(kind, obj)

    # -- faults
    def record_fault(self, kind: str, detail: str, ops: list[str] | None = None) -> Fault:
        """A fault and the operations it touched: `ops`, or (None) every operation not yet terminal."""
        with self.lock:
            touched = ops if ops is not None else [n for n, r in self.ops.items() if r.state not in TERMINAL_STATES]
            fault = Fault(len(self.faults) + 1, kind, time.monotonic(), detail, list(touched))
            self.faults.append(fault)
            for name in touched:
                rec = self.ops[name]
                rec.touches.append(f"#{fault.id} {kind}")
                if kind in DISRUPTIVE:
                    rec.disrupted.append(f"#{fault.id} {kind}")
            return fault

    def pick(self, rng: random.Random, predicate: Callable[[OpRecord], bool]) -> OpRecord | None:
        with self.lock:
            candidates = sorted((r for r in self.ops.values() if predicate(r)), key=lambda r: r.name)
            return rng.choice(candidates) if candidates else None


# ==================================================================================== the report


def op_of(pod: JSON) -> str:
    """The name of the operation a dops pod runs (its annotation is namespace/name)."""
    return str((pod["metadata"].get("annotations") or {}).get(OPERATION_ANNOTATION) or "").partition("/")[2]


def condition(obj: JSON, ctype: str) -> JSON:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return {}


def processed(obj: JSON) -> bool:
    """Terminal, and the operator has recorded it: the `Succeeded` condition agrees with the run state."""
    state = (obj.get("status") or {}).get("runState")
    if state not in TERMINAL_STATES:
        return False
    return condition(obj, "Succeeded").get("status") == ("True" if state == "completed" else "False")


def failure_reason(obj: JSON) -> str:
    status = obj.get("status") or {}
    cond = condition(obj, "Succeeded")
    result = status.get("result") or {}
    lines = str(result.get("error") or "").strip().splitlines()
    text = cond.get("message") or result.get("errorMessage") or (lines[-1] if lines else "") or "<no message>"
    return f"{cond.get('reason') or '<no reason>'}: {' '.join(str(text).split())[:200]}"


@dataclasses.dataclass
class Report:
    config: ChaosConfig
    ops: dict[str, OpRecord]
    final: dict[str, JSON]  # name → the operation as listed after quiescence
    faults: list[Fault]
    caps: dict[str, int]
    max_active_ops: dict[str, int]
    max_active_jobs: dict[str, int]
    max_active_jobs_at: dict[str, list[str]]
    over_cap: list[str]
    kills: int
    operators: int
    takeovers: list[float]
    seconds: float
    quiesced: bool
    quiesce_took: float = 0.0
    restarts: list[float] = dataclasses.field(default_factory=list)  # kube-apiserver restarts: seconds to ready

    def _state(self, name: str) -> str:
        return str(((self.final.get(name) or {}).get("status") or {}).get("runState") or "")

    def stuck(self) -> list[str]:
        """Not terminal, or terminal but not processed by the operator, after quiescence; for an operation this
        harness deleted: still there."""
        return sorted(
            n for n, r in self.ops.items() if (n in self.final if r.deleted else not processed(self.final.get(n) or {}))
        )

    def jobs_left(self) -> list[str]:
        return sorted(f"{n}: {sorted(r.active_jobs)}" for n, r in self.ops.items() if r.active_jobs)

    def double_job(self) -> list[str]:
        return sorted(f"{n}: {r.double_jobs[0]}" for n, r in self.ops.items() if r.double_jobs)

    def untouched_failures(self) -> list[str]:
        """Failed, but neither failing by design nor disrupted (pod/Job deleted, cancelled)."""
        out = []
        for name, rec in sorted(self.ops.items()):
            if self._state(name) == "failed" and rec.kind not in DESIGNED_FAILURES and not rec.disrupted:
                extra = f" (touched by {', '.join(rec.touches[-4:])})" if rec.touches else " (no fault touched it)"
                out.append(f"{name} [{rec.kind}/{rec.target}]: {failure_reason(self.final[name])}{extra}")
        return out

    def failures_without_reason(self) -> list[str]:
        out = []
        for name in sorted(self.ops):
            obj = self.final.get(name) or {}
            if self._state(name) != "failed":
                continue
            cond = condition(obj, "Succeeded")
            result = (obj.get("status") or {}).get("result") or {}
            if (
                not cond.get("reason")
                or cond.get("status") != "False"
                or not (result.get("error") or cond.get("message"))
            ):
                out.append(f"{name}: condition {cond or '<none>'}, result {result or '<none>'}")
        return out

    def completions_without_result(self) -> list[str]:
        out = []
        for name, rec in sorted(self.ops.items()):
            if self._state(name) != "completed":
                continue
            result = ((self.final[name].get("status") or {}).get("result") or {}).get("result")
            if rec.kind in DESIGNED_FAILURES:
                out.append(f"{name} [{rec.kind}/{rec.target}]: fails by design but completed with {result!r}")
            elif result != rec.expected:
                out.append(f"{name} [{rec.kind}/{rec.target}]: result {result!r}, expected {rec.expected!r}")
        return out

    def wrong_designed_failures(self) -> list[str]:
        """Undisrupted operations that fail by design but failed for another reason (info: bug 7 shows here)."""
        out = []
        for name, rec in sorted(self.ops.items()):
            if rec.kind not in DESIGNED_FAILURES or rec.disrupted or self._state(name) != "failed":
                continue
            obj = self.final[name]
            result = (obj.get("status") or {}).get("result") or {}
            reason = condition(obj, "Succeeded").get("reason")
            if rec.kind == "stranded":
                if reason != "StartDeadlineExceeded":
                    out.append(f"{name} [{rec.target}]: {failure_reason(obj)}")
            elif rec.expected not in str(result.get("error") or "") or reason == "Cancelled":
                out.append(f"{name} [{rec.target}]: {failure_reason(obj)}")
        return out

    def mislabelled_cancels(self) -> list[str]:
        """Cancelled by this harness, failed, but not labelled Cancelled (info: bug 7's other half)."""
        out = []
        for name, rec in sorted(self.ops.items()):
            if rec.cancelled and self._state(name) == "failed":
                obj = self.final[name]
                if condition(obj, "Succeeded").get("reason") != "Cancelled" and len(rec.disrupted) == 1:
                    out.append(f"{name}: {failure_reason(obj)}")
        return out

    def _stuck_line(self, name: str) -> str:
        rec = self.ops[name]
        state = self._state(name) or "<no state>"
        if rec.deleted:
            state = "deleted by the harness but still present"
        elif state in TERMINAL_STATES:
            state += " but never processed by the operator (no final Succeeded condition)"
        return (
            f"{name} [{rec.kind}/{rec.target}] {state}; "
            f"states {' > '.join(rec.states) or '-'}; touched by {', '.join(rec.touches[-4:]) or '-'}"
        )

    def problems(self) -> dict[str, list[str]]:
        """Each asserted invariant → the operations breaking it (empty lists: it holds)."""
        over = [f"{t}: max {self.max_active_ops[t]} > {c}" for t, c in self.caps.items() if self.max_active_ops[t] > c]
        return {
            "stuck (not terminal after quiescence)": [self._stuck_line(n) for n in self.stuck()],
            "Jobs still active after quiescence": self.jobs_left(),
            "two active Jobs at once": self.double_job(),
            "failed though no disruptive fault touched it": self.untouched_failures(),
            "failed without a reason": self.failures_without_reason(),
            "completed without its result": self.completions_without_result(),
            "maxConcurrent exceeded": over + self.over_cap[:5],
        }

    def line(self) -> str:
        counts: dict[str, int] = {}
        for fault in self.faults:
            counts[fault.kind] = counts.get(fault.kind, 0) + 1
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        terminal = sum(1 for n in self.ops if self._state(n) in TERMINAL_STATES)
        deleted = sum(1 for r in self.ops.values() if r.deleted)
        completed = sum(1 for n in self.ops if self._state(n) == "completed")
        conc = ", ".join(f"{self.max_active_ops[t]}/{c} {t}" for t, c in sorted(self.caps.items()))
        jobs = ", ".join(f"{self.max_active_jobs[t]} {t}" for t in sorted(self.caps))
        problems = self.problems()
        takeover = ""
        if self.takeovers:
            takeover = f", standby takeover max {max(self.takeovers):.1f} s of {len(self.takeovers)}"
        restarts = ""
        if self.restarts:
            restarts = f", {len(self.restarts)} kube-apiserver restarts (ready again within {max(self.restarts):.1f} s)"
        return (
            f"chaos: {self.config.plane} plane, seed {self.config.seed}, {len(self.ops)} ops, "
            f"{terminal} terminal ({completed} completed), "
            f"{deleted} deleted on purpose, "
            f"{len(problems['stuck (not terminal after quiescence)'])} stuck, "
            f"{len(problems['two active Jobs at once'])} double-Job, "
            f"{len(problems['failed though no disruptive fault touched it'])} untouched failures, "
            f"{len(problems['failed without a reason'])} failures without reason, "
            f"{len(problems['completed without its result'])} completions without result, "
            f"max concurrency {conc} (max active Jobs {jobs}), "
            f"{len(self.faults)} faults ({kinds}), "
            f"{self.kills} operator kills ({self.operators} operators{takeover}){restarts}, "
            f"{len(self.wrong_designed_failures())} designed failures mislabelled, "
            f"{len(self.mislabelled_cancels())} cancels mislabelled, "
            f"{'quiesced' if self.quiesced else 'not quiesced'} {self.quiesce_took:.0f} s after the chaos, "
            f"{self.seconds:.0f} s"
        )

    def details(self, limit: int = 12) -> str:
        lines = []
        for title, items in self.problems().items():
            if items:
                lines.append(f"{title}: {len(items)}")
                lines.extend(f"  {item}" for item in items[:limit])
        jobs_over = [
            f"{t}: {self.max_active_jobs[t]} > {c}: {', '.join(self.max_active_jobs_at[t])}"
            for t, c in sorted(self.caps.items())
            if self.max_active_jobs[t] > c
        ]
        for title, items in (
            ("info: more active Jobs than maxConcurrent (op state in brackets)", jobs_over),
            ("info: designed failures with another reason", self.wrong_designed_failures()),
            ("info: cancels not labelled Cancelled", self.mislabelled_cancels()),
        ):
            if items:
                lines.append(f"{title}: {len(items)}")
                lines.extend(f"  {item}" for item in items[:limit])
        return "\n".join(lines)


# ==================================================================================== processes


OPERATOR_MAIN = (
    "import sys\nfrom dops.handlers import run_operator\nrun_operator(all_namespaces=True, kubeconfig=sys.argv[1])\n"
)


LEASE_SECONDS = (6, 4, 1)  # duration, renew deadline, retry period: short, so a takeover fits a short run


def leader_election_env(source: Path) -> dict[str, str]:
    """DOPS_* variables that turn leader election on with short leases, when the operator has it ({} if not).

    Detected from the settings' fields of the `dops` the operator will run (a subprocess reads them), so this
    suite runs one operator before leader election exists and two (a leader and a standby) once it does."""
    probe = "import dataclasses as d, dops.domain.settings as s; print(*[f.name for f in d.fields(s.OperatorSettings)])"
    found = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = set(found.stdout.split())
    if "leader_election" not in names:
        return {}
    env = {"DOPS_LEADER_ELECTION": "true", "DOPS_LEADER_ELECTION_NAMESPACE": NAMESPACE}
    for name, value in zip(
        ("lease_duration_seconds", "lease_renew_deadline_seconds", "lease_retry_period_seconds"),
        LEASE_SECONDS,
        strict=True,
    ):
        if name in names:
            env["DOPS_" + name.upper()] = str(value)
    return env


class OperatorFleet:
    """The operator processes, each in a process group of its own (kill -9 reaches it and only it)."""

    def __init__(self, kubeconfig: Path, work: Path, count: int, env: Mapping[str, str]) -> None:
        self.kubeconfig = kubeconfig
        self.work = work
        self.env = dict(env)
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.logs: list[Path] = [work / f"operator-{i}.log" for i in range(count)]
        self.kills = 0
        self.generations = [0] * count
        self.lock = threading.Lock()

    def identity(self, index: int) -> str:
        """The operator's pod name (and Lease identity): the same after a container restart, new for a new pod."""
        return f"chaos-operator-{index}-{self.generations[index]}"

    def replace(self, index: int) -> None:
        """Start operator `index` as a new pod would (a new identity), e.g. after its node was lost."""
        self.generations[index] += 1
        self.start(index)

    def start(self, index: int) -> None:
        identity = self.identity(index)
        env = dict(self.env, POD_NAME=identity, HOSTNAME=identity, DOPS_LEADER_ELECTION_IDENTITY=identity)
        with self.logs[index].open("ab") as log, self.lock:
            log.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.procs[index] = subprocess.Popen(
                [sys.executable, "-c", OPERATOR_MAIN, str(self.kubeconfig)],
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_all(self) -> None:
        for index in range(len(self.procs)):
            self.start(index)

    def kill(self, index: int) -> None:
        """SIGKILL the operator's whole process group (no clean-up, no lease release: a crash or node loss)."""
        with self.lock:
            proc = self.procs[index]
            self.procs[index] = None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        self.kills += 1

    def ensure_running(self) -> None:
        for index, proc in enumerate(self.procs):
            if proc is None or proc.poll() is not None:
                self.start(index)

    def stop_all(self) -> None:
        """SIGTERM every group, then SIGKILL what is left: nothing outlives the run, whatever happened."""
        with self.lock:
            procs = [p for p in self.procs if p is not None]
            self.procs = [None] * len(self.procs)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def stacks(self) -> str:
        """Every live operator's Python stacks (py-spy dump, when the venv has it): what a stuck operator was doing
        when the run gave up on it, taken before the fleet is stopped."""
        spy = Path(sys.executable).parent / "py-spy"
        if not spy.exists():
            return ""
        out = []
        for index, proc in enumerate(self.procs):
            if proc is None or proc.poll() is not None:
                continue
            try:
                dumped = subprocess.run(
                    [str(spy), "dump", "--pid", str(proc.pid)], capture_output=True, text=True, timeout=60
                )
                out.append(f"--- operator-{index} (pid {proc.pid}) stacks\n{dumped.stdout or dumped.stderr}")
            except (OSError, subprocess.SubprocessError) as exc:
                out.append(f"--- operator-{index}: py-spy dump failed: {exc!r}")
        return "\n".join(out)

    def tail(self, lines: int = 25) -> str:
        out = []
        for log in self.logs:
            if log.exists():
                text = log.read_text(errors="replace").splitlines()
                out.append(f"--- {log.name} (last {lines} lines)\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


# ==================================================================================== the run


def control_plane_settings(source: Path) -> Any:
    from dops.emulator import ServerSettings
    from dops.emulator.controllers import ALL as ALL_CONTROLLERS

    image_map: dict[str, Any] = {
        "ghcr.io/dops-dev/dops:*": {
            "mode": "process",
            "command": [sys.executable, "-m", "tests.chaos.worker"],
            "env": {"PYTHONPATH": f"{source}:{REPO}"},
        },
        "registry.invalid/*": "missing",
    }
    return ServerSettings(
        history_size=200_000,
        bookmark_interval=2.0,
        controllers=ALL_CONTROLLERS,
        controller_options={
            "kubelet": {
                "image_map": image_map,
                "image_pull_backoff_base": 0.5,
                "image_pull_backoff_max": 2.0,
                "minimum_grace_period": 1.0,
            },
            "job": {"backoff_base": 0.2, "backoff_max": 2.0},
        },
    )


def operator_env(kubeconfig: Path, archive: Path, leader: Mapping[str, str], source: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPS_")}
    env.update(
        PYTHONPATH=f"{source}:{REPO}",
        KUBECONFIG=str(kubeconfig),
        POD_NAMESPACE=NAMESPACE,
        DOPS_LOG_ARCHIVE=str(archive),
        DOPS_METRICS_PORT="0",
        DOPS_HEALTH_PORT="0",
        DOPS_BIND_ADDRESS="127.0.0.1",
        DOPS_IMAGE_PULL_GRACE_SECONDS="3",
        DOPS_RECONCILE_INTERVAL_SECONDS="5",
        DOPS_DEFAULT_MAX_CONCURRENT="10",
        DOPS_GLOBAL_MAX_CONCURRENT="100",
        DOPS_WATCH_STALE_SECONDS="60",
        DOPS_JOB_TTL_SECONDS="600",
        **leader,
    )
    return env


class ChaosRun:
    """One run: `with ChaosRun(config) as run: report = run.run()`. Leaving the block stops everything."""

    def __init__(self, config: ChaosConfig, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.say = log
        self.rng = random.Random(config.seed)
        self.stop = threading.Event()
        self.chaos_over = threading.Event()
        self._stack = contextlib.ExitStack()
        caps = {SIM_TARGET: config.sim_max_concurrent, PROC_TARGET: config.proc_max_concurrent, NOWHERE_TARGET: 2}
        if config.process_share == 0:  # no real worker processes (the real plane): no target for them
            del caps[PROC_TARGET]
        # Start deadlines exist when the DelegationTarget CRD has the field: then some operations are stranded.
        targets_crd = (REPO / "crds" / "dops.io_delegationtargets.yaml").read_text()
        self.start_deadlines = "startDeadlineSeconds:" in targets_crd
        self.ledger = Ledger(caps)
        self.ledger.on_pod = self._on_pod
        self.workers: dict[str, threading.Event] = {}  # simulated pod uid → its "SIGTERM"
        self.workers_lock = threading.Lock()
        self.worker_trace: dict[str, list[str]] = collections.defaultdict(list)  # operation → its fake worker's steps
        self.harness_errors: list[str] = []
        # Where the operator and the workers import `dops` from (the checkout's, unless comparing versions).
        self.source = Path(config.source) if config.source else REPO / "operator"
        self.takeovers: list[float] = []  # seconds from a leader's kill to the standby holding the Lease
        self.outage_until = 0.0  # monotonic end of the current API outage (0: none)
        self.cluster: Any = None  # the real plane's RealPlaneCluster (None on the embedded plane)
        self.restarts: list[float] = []  # seconds each kube-apiserver restart took to be ready again

    # -- set-up and tear-down
    def __enter__(self) -> ChaosRun:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._stack.close()

    def _start(self) -> None:
        if self.config.keep:
            self.work = Path(self.config.keep)
            self.work.mkdir(parents=True, exist_ok=True)
        else:
            self.work = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="dops-chaos-")))
        if self.config.plane == "real":
            self._start_real()
        else:
            self._start_embedded()
        self._stack.callback(self.api.close)
        self.pool = ThreadPoolExecutor(max_workers=self.config.sim_max_concurrent * 3 + 4, thread_name_prefix="fake")
        self._stack.callback(self.pool.shutdown, wait=True, cancel_futures=True)
        self._stack.callback(self.stop.set)  # runs before the pool's shutdown: fake workers see it and return
        self.api.must(
            "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        )
        if self.cluster is not None:  # the chart makes it; the real admission refuses pods naming a missing one
            account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": WORKER_ACCOUNT}}
            self.api.must("POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts", account)
        self._targets()
        leader = leader_election_env(self.source)
        count = 2 if leader else 1
        env = operator_env(self.kubeconfig, self.work / "archive", leader, self.source)
        if self.cluster is not None:
            # The node agent's simulated containers run until stopped: the operator stops a finished operation's
            # Job after this grace (the embedded kubelet's end when this harness says so, see _exit_simulated).
            env["DOPS_WORKER_EXIT_GRACE_SECONDS"] = "2"
        self.fleet = OperatorFleet(self.kubeconfig, self.work, count, env)
        self._stack.callback(self.fleet.stop_all)  # registered after the server: runs before it stops
        watches = []
        for path, handler in (
            (f"{GROUP}/namespaces/{NAMESPACE}/delegatedoperations", self.ledger.op_events),
            (f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", self.ledger.job_events),
            (f"/api/v1/namespaces/{NAMESPACE}/pods", self.ledger.pod_events),
        ):
            watch = Watch(self.endpoint, path, handler, self.stop)
            watch.start()
            watches.append(watch)

        def stop_watches() -> None:
            self.stop.set()
            for w in watches:
                w.close()
            for w in watches:
                w.join(15)

        self._stack.callback(stop_watches)
        for watch in watches:
            assert watch.synced.wait(30), f"the watch on {watch.path} did not start"
        self.watches = watches
        self.fleet.start_all()

    def _start_embedded(self) -> None:
        from dops.emulator import EmbeddedServer
        from dops.emulator.bootstrap import apply_manifest_paths

        self.server = self._stack.enter_context(EmbeddedServer.run_in_thread(control_plane_settings(self.source)))
        self.server.call(lambda: apply_manifest_paths(self.server.api, [REPO / "crds"]))
        self.kubeconfig = self.server.write_kubeconfig(self.work / "kubeconfig")
        self.endpoint = Endpoint(self.server.url)
        self.api = Api(self.endpoint, stop=self.stop)

    def _start_real(self) -> None:
        """The upstream control plane (tests/realcluster) and one node agent that runs the simulated pods.

        No fault hooks exist there: the API faults are the real ones a cluster has (the API server killed and
        restarted, etcd stalled), and there are no real worker processes (the agent would need the worker's
        image mapped, its ServiceAccount's RBAC and the time of a Python start per operation; the embedded run
        covers them). kube-controller-manager gets a client rate that does not make its own 20 requests/s the
        bottleneck of the run (as `scripts/bench_operator.py --controller-qps`)."""
        from tests.e2e.realplane import RealPlaneCluster, control_plane_binaries, find_clients
        from tests.planes import install_crds

        tools, problem = find_clients()
        if tools is None:
            raise RuntimeError(f"the real control plane needs kubectl: {problem} (run `make clients`)")
        cluster = RealPlaneCluster(
            name="chaos",
            tools=tools,
            workdir=self.work / "real",
            bin_dir=control_plane_binaries(),
            controller_manager_flags=("--kube-api-qps=100", "--kube-api-burst=200"),
        )
        self._stack.callback(cluster.delete)
        cluster.create()
        cluster.start_node()
        assert cluster.control_plane is not None
        self.cluster = cluster
        self.control_plane = cluster.control_plane
        admin = self.control_plane.admin
        credentials = (str(admin.cert), str(admin.key))
        self.endpoint = Endpoint(self.control_plane.url, str(self.control_plane.ca_file), credentials)
        self.kubeconfig = self.control_plane.kubeconfig
        self.api = Api(self.endpoint, stop=self.stop)
        # The server judges them; a real API server then holds creates of their objects for 2 s more (the first
        # submissions wait, see docs/GAPS.md "New CRDs").
        install_crds(self.endpoint, sorted((REPO / "crds").glob("*.yaml")), timeout=60)

    def _targets(self) -> None:
        common = {"mode": "job", "retries": 0, "allowImportPaths": False}
        for name, spec in (
            (PROC_TARGET, {**common, "maxConcurrent": self.config.proc_max_concurrent}),
            (
                SIM_TARGET,
                {
                    **common,
                    "maxConcurrent": self.config.sim_max_concurrent,
                    "podTemplate": {
                        "annotations": {SIMULATE_ANNOTATION: "true", "dops.emulator/simulate-duration": "3600"}
                    },
                },
            ),
            (
                NOWHERE_TARGET,
                {
                    **common,
                    "maxConcurrent": 2,
                    "startDeadlineSeconds": START_DEADLINE_SECONDS,
                    "podTemplate": {
                        "annotations": {SIMULATE_ANNOTATION: "true"},
                        "nodeSelector": {"chaos.dops.io/node": "nowhere"},
                    },
                },
            ),
        ):
            if (name == NOWHERE_TARGET and not self.start_deadlines) or name not in self.ledger.caps:
                continue
            body = {
                "apiVersion": "dops.io/v1alpha1",
                "kind": "DelegationTarget",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": spec,
            }
            self.api.must("POST", f"{GROUP}/namespaces/{NAMESPACE}/delegationtargets", body)

    # -- the plan: which operations, of which kinds, when
    def plan(self) -> list[tuple[float, OpRecord]]:
        plan = []
        burst = int(self.config.operations * 0.3)
        spread = max(1.0, self.config.chaos_seconds * 0.75)
        for i in range(self.config.operations):
            kind = self.rng.choices(KINDS, KIND_WEIGHTS)[0]
            target = PROC_TARGET if self.rng.random() < self.config.process_share else SIM_TARGET
            if self.start_deadlines and self.rng.random() < STRANDED_SHARE:
                kind, target = "stranded", NOWHERE_TARGET
            name = f"c{i:04d}-{kind}"
            params: JSON
            expected: Any
            if kind == "stranded":
                params, expected = {"i": i}, "StartDeadlineExceeded"
            elif kind == "fast":
                params = {"i": i, "seed": self.config.seed}
                expected = dict(params)
            elif kind == "progress":
                params = {"n": 4, "delay": 0.2}
                expected = {"count": 4}
            elif kind == "sleep":
                seconds = self.rng.choice([0.5, 1, 2])
                params = {"seconds": seconds}
                expected = {"slept": seconds}
            else:
                params = {"message": f"chaos designed failure {name}"}
                expected = params["message"]
            at = 0.0 if i < burst else self.rng.uniform(0, spread)
            plan.append((at, OpRecord(name, kind, target, params, expected)))
        plan.sort(key=lambda item: item[0])
        return plan

    def _submit(self, plan: list[tuple[float, OpRecord]], started: float) -> None:
        uris = {"fast": "echo", "progress": "count", "sleep": "sleep", "fail": "fail", "stranded": "echo"}
        for at, rec in plan:
            delay = started + at - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                return
            with self.ledger.lock:
                self.ledger.ops[rec.name] = rec
            body = {
                "apiVersion": "dops.io/v1alpha1",
                "kind": "DelegatedOperation",
                "metadata": {"name": rec.name, "namespace": NAMESPACE, "labels": {"chaos.dops.io/kind": rec.kind}},
                "spec": {
                    "operator": f"@dops/examples/{uris[rec.kind]}",
                    "label": f"chaos {rec.kind}",
                    "delegationTarget": rec.target,
                    "context": {"params": rec.params},
                },
            }
            code, payload = self.api.call("POST", f"{GROUP}/namespaces/{NAMESPACE}/delegatedoperations", body)
            if code not in (201, 409):  # 409: an earlier try reached the server
                self.harness_errors.append(f"create {rec.name}: {code} {payload.get('message')}")

    # -- the harness's worker for simulated pods
    def _on_pod(self, kind: str, obj: JSON) -> None:
        meta = obj["metadata"]
        if str((meta.get("annotations") or {}).get(SIMULATE_ANNOTATION)) != "true":
            return
        uid = meta["uid"]
        gone = kind == "DELETED" or bool(meta.get("deletionTimestamp"))
        running = (obj.get("status") or {}).get("phase") == "Running"
        with self.workers_lock:
            sigterm = self.workers.get(uid)
            if sigterm is not None:
                if gone and not sigterm.is_set():
                    sigterm.set()
                    self._trace(op_of(obj), f"{meta['name']} deleted: SIGTERM")
                return
            if gone or not running or self.stop.is_set():
                return
            sigterm = self.workers[uid] = threading.Event()
        op = op_of(obj)
        self._trace(op, f"{meta['name']} Running: worker started")
        self.pool.submit(self._fake_worker, meta["name"], uid, op, sigterm)

    def _trace(self, op: str, step: str) -> None:
        self.worker_trace[op].append(f"{time.strftime('%H:%M:%S')} {step}")

    def _stopped(self, sigterm: threading.Event, seconds: float = 0.0) -> bool:
        return sigterm.wait(seconds) or self.stop.is_set()

    def _fake_worker(self, pod: str, uid: str, op: str, sigterm: threading.Event) -> None:
        """The worker's protocol for one simulated pod: claim (CAS scheduled → running, naming the pod), work,
        record the outcome (CAS on running *and* this pod), then exit as the worker would (0, or 1 for a
        recorded failure). A deleted pod stops it at once without a write, as SIGTERM stops the worker."""
        try:
            self._fake_worker_body(pod, uid, op, sigterm)
        except Exception as exc:  # a harness bug must show, not vanish in the pool
            self.harness_errors.append(f"fake worker {pod}: {exc!r}")

    def _fake_worker_body(self, pod: str, uid: str, op: str, sigterm: threading.Event) -> None:
        rec = self.ledger.ops[op]
        path = f"{GROUP}/namespaces/{NAMESPACE}/delegatedoperations/{op}/status"
        stamp = now()
        claim = [
            {"op": "test", "path": "/status/runState", "value": "scheduled"},
            {"op": "add", "path": "/status/runState", "value": "running"},
            {"op": "add", "path": "/status/startedAt", "value": stamp},
            {"op": "add", "path": "/status/updatedAt", "value": stamp},
            {"op": "add", "path": "/status/podName", "value": pod},
        ]
        code, _ = self.api.call(
            "PATCH", path, claim, params=AS_WORKER, content_type=JSON_PATCH, patience=WORKER_PATIENCE
        )
        self._trace(op, f"{pod} claim: {code}")
        if code != 200:
            code, current = self.api.call("GET", path)
            status = (current.get("status") or {}) if code == 200 else {}  # an error's Status has status "Failure"
            if code != 200 or status.get("runState") != "running" or status.get("podName") != pod:
                self._trace(op, f"{pod} not claimed ({code}, {status.get('runState')}, {status.get('podName')})")
                self._exit_simulated(uid, 0, op)  # nothing to do (cancelled, another pod's, ...): exit 0
                return
        if rec.kind == "progress":
            n, delay = int(rec.params["n"]), float(rec.params["delay"])
            for i in range(1, n + 1):
                if self._stopped(sigterm, delay):
                    return
                progress = {"progress": i / n, "label": f"{i}/{n}", "updatedAt": now()}
                self.api.call(
                    "PATCH",
                    path,
                    {"status": {"progress": progress}},
                    content_type="application/merge-patch+json",
                    patience=5,
                )
        elif rec.kind == "sleep" and self._stopped(sigterm, float(rec.params["seconds"])):
            return
        if self._stopped(sigterm):
            return
        stamp = now()
        if rec.kind == "fail":
            state, when = "failed", "failedAt"
            error = f"Traceback (most recent call last):\nExampleFailure: {rec.expected}"
            result: JSON = {"error": error, "errorMessage": str(rec.expected)}
        else:
            state, when, result = "completed", "completedAt", {"result": rec.expected}
        record = [
            {"op": "test", "path": "/status/runState", "value": "running"},
            {"op": "test", "path": "/status/podName", "value": pod},
            {"op": "add", "path": "/status/runState", "value": state},
            {"op": "add", "path": f"/status/{when}", "value": stamp},
            {"op": "add", "path": "/status/updatedAt", "value": stamp},
            {"op": "add", "path": "/status/result", "value": result},
        ]
        code, payload = self.api.call(
            "PATCH", path, record, params=AS_WORKER, content_type=JSON_PATCH, patience=WORKER_PATIENCE
        )
        self._trace(op, f"{pod} recording {state}: {code}")
        if code not in (200, 404, 422, 409) and not self.stop.is_set():
            self.harness_errors.append(f"fake worker {pod}: recording {state}: {code} {payload.get('message')}")
        self._exit_simulated(uid, 1 if (code == 200 and state == "failed") else 0, op)

    def _exit_simulated(self, uid: str, code: int, op: str) -> None:
        """End a simulated pod's container with the worker's exit code (the emulator's kubelet, in-process).

        On the real plane the node agent is another process: its simulated container runs on, and the operator
        stops the Job once its exit grace has passed (DOPS_WORKER_EXIT_GRACE_SECONDS, set short there)."""
        if self.stop.is_set():
            return
        if self.cluster is not None:
            self._trace(op, f"exit {code}: left to the operator's exit grace (node agent)")
            return

        def act() -> int:
            kubelet = self.server.controllers.get("kubelet")
            runtime = getattr(kubelet, "_pods", {}).get(uid)
            ended = 0
            for container in getattr(runtime, "all", ()) or ():
                runner = getattr(getattr(container, "current", None), "runner", None)
                finish = getattr(runner, "_finish", None)
                if finish is not None:
                    finish(code, "" if code == 0 else "failure recorded")
                    ended += 1
            return ended

        try:
            ended = self.server.call(act)
        except Exception as exc:
            self._trace(op, f"exit {code}: {exc!r}")
        else:
            self._trace(
                op, f"exit {code}: {ended} container(s) ended" if ended else f"exit {code}: no running container"
            )

    # -- chaos
    def _chaos(self, deadline: float) -> None:
        next_kill = time.monotonic() + self.config.kill_interval * self.rng.uniform(0.5, 1.2)
        actions: list[tuple[str, float]] = [
            ("delete-pod", 2),
            ("delete-job", 1),
            ("cancel", 1.5),
            ("requeue", 1.5),
            ("delete-op", 1),
        ]
        if self.cluster is None:  # the emulator's fault hooks
            actions += [("api-error", 4), ("expire-watches", 1), ("drop-watches", 1), ("outage", 0.5)]
        else:  # what a real control plane does: restarts of its API server, stalls of its storage
            actions += [("restart-apiserver", 0.3), ("stall-etcd", 0.6)]
        # One kube-apiserver restart a third of the way in, whatever the dice say: it is what the real plane is for.
        next_restart = time.monotonic() + (deadline - time.monotonic()) / 3 if self.cluster is not None else None
        while True:
            wait = self.rng.expovariate(1.0 / self.config.fault_interval)
            if self.stop.wait(max(0.0, min(wait, deadline - time.monotonic()))) or time.monotonic() >= deadline:
                return
            if self.cluster is None and self.outage_until and time.monotonic() >= self.outage_until:
                self.outage_until = 0.0
                self.api.call("DELETE", "/__emulator/faults")  # ends the outage (and any rule left unused)
                continue
            if next_restart is not None and time.monotonic() >= next_restart:
                next_restart = None
                try:
                    self._fault_restart_apiserver()
                except Exception as exc:
                    self.harness_errors.append(f"fault restart-apiserver: {exc!r}")
                continue
            if time.monotonic() >= next_kill:
                self._kill_operator()
                next_kill = time.monotonic() + self.config.kill_interval * self.rng.uniform(0.5, 1.5)
                continue
            action = self.rng.choices([a for a, _ in actions], [w for _, w in actions])[0]
            try:
                getattr(self, "_fault_" + action.replace("-", "_"))()
            except Exception as exc:
                self.harness_errors.append(f"fault {action}: {exc!r}")

    def _kill_operator(self) -> None:
        """kill -9 the leader (the only operator, or the Lease's holder); restart it after 0-3 s, sometimes with
        an API error waiting for its start-up listing (issue 11's start-up that half-fails)."""
        index = self._leader()
        self.ledger.record_fault("operator-kill", f"kill -9 operator {index}")
        self.fleet.kill(index)
        if len(self.fleet.procs) > 1:
            threading.Thread(target=self._time_takeover, args=(self.fleet.identity(index),), daemon=True).start()
        if self.stop.wait(self.rng.uniform(0.0, 3.0)):
            return
        if self.cluster is None and self.rng.random() < 0.5:
            code, path = self.rng.choice(
                [(500, r"^/api/v1/pods$"), (500, r"^/apis/batch/v1/jobs$"), (429, rf"^{GROUP}/delegatedoperations$")]
            )
            self.ledger.record_fault(f"api-{code}", f"start-up: GET {path} x1")
            self.api.call("POST", "/__emulator/faults", {"code": code, "method": "GET", "path": path, "times": 1})
        if self.rng.random() < 0.5:
            self.fleet.start(index)  # the container restarts in its pod: same identity
        else:
            self.fleet.replace(index)  # a new pod replaces it: a new identity (the standby may take over first)

    def _time_takeover(self, old: str) -> None:
        """Seconds from killing the leader until the Lease names another holder (the standby's takeover)."""
        started = time.monotonic()
        path = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/dops-operator"
        renewed = None
        while not self.stop.is_set() and time.monotonic() - started < 60:
            code, lease = self.api.call("GET", path, patience=1)
            spec = (lease.get("spec") or {}) if code == 200 else {}
            holder = str(spec.get("holderIdentity") or "")
            if renewed is None:
                renewed = spec.get("renewTime")
            elif holder == old and spec.get("renewTime") != renewed:
                return  # the killed container came back (same identity) and renewed: no takeover to time
            if holder and holder != old:
                with self.ledger.lock:
                    self.takeovers.append(time.monotonic() - started)
                return
            time.sleep(0.1)

    def _leader(self) -> int:
        count = len(self.fleet.procs)
        if count == 1:
            return 0
        path = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/dops-operator"
        code, lease = self.api.call("GET", path, patience=5)
        holder = str((lease.get("spec") or {}).get("holderIdentity") or "") if code == 200 else ""
        for index in range(count):
            if holder == self.fleet.identity(index):
                return index
        return self.rng.randrange(count)

    def _act(self, kind: str, detail: str, op: str, method: str, path: str, body: Any = None, **kwargs: Any) -> bool:
        """Do one disruptive act and record it as a fault on `op` when it took effect (or may have: no answer).

        Short patience: during an injected outage the act is dropped rather than stalling the chaos."""
        code, _ = self.api.call(method, path, body, patience=5, **kwargs)
        if code in (0, 200, 201, 202):
            self.ledger.record_fault(kind, detail, [op])
            return True
        return False

    def _fault_delete_pod(self) -> None:
        with self.ledger.lock:
            pods = sorted((n, p) for n, p in self.ledger.pods.items() if not p["metadata"].get("deletionTimestamp"))
        if not pods:
            return
        name, pod = self.rng.choice(pods)
        op = str(pod["metadata"]["annotations"][OPERATION_ANNOTATION]).partition("/")[2]
        self._act("delete-pod", name, op, "DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")

    def _fault_delete_job(self) -> None:
        with self.ledger.lock:
            jobs = sorted((j, op) for j, (op, active) in self.ledger.jobs.items() if active)
        if not jobs:
            return
        job, op = self.rng.choice(jobs)
        path = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{job}"
        self._act("delete-job", job, op, "DELETE", path, BACKGROUND)

    def _fault_api_error(self) -> None:
        # Mostly aimed at real workers (their HTTP client is what issue 11's point 5 is about).
        proc = self.rng.random() < 0.7
        running = self._pick_state("running", proc)
        scheduled = self._pick_state("scheduled", proc)
        ns_ops = f"{GROUP}/namespaces/{NAMESPACE}/delegatedoperations"
        choices: list[tuple[int, str, str, int, list[str] | None]] = [
            (500, "POST", r"^/apis/batch/v1/namespaces/[^/]+/jobs$", 2, None),
            (429, "GET", r"^/api/v1/pods$", 1, None),
            (500, "GET", r"^/apis/batch/v1/jobs$", 1, None),
            (500, "GET", rf"^{GROUP}/delegatedoperations$", 1, None),
            (503, "PATCH", rf"^{ns_ops}/[^/]+$", 2, None),
            (500, "DELETE", r"^/apis/batch/v1/namespaces/[^/]+/jobs/", 1, None),
        ]
        if running is not None:  # the status writes of one running operation: its worker's or the operator's
            choices += [
                (500, "PATCH", rf"^{ns_ops}/{running.name}/status$", self.rng.randint(1, 3), [running.name])
            ] * 3
        if scheduled is not None:  # its worker's claim (or the operator's fallback claim)
            status = rf"^{ns_ops}/{scheduled.name}/status$"
            choices += [(500, "PATCH", status, self.rng.randint(1, 2), [scheduled.name])] * 2
            # the best-effort run-state label write that follows a claim
            choices += [(500, "PATCH", rf"^{ns_ops}/{scheduled.name}$", 1, [scheduled.name])]
        code, method, path, times, ops = self.rng.choice(choices)
        self.ledger.record_fault(f"api-{code}", f"{method} {path} x{times}", ops)
        self.api.must("POST", "/__emulator/faults", {"code": code, "method": method, "path": path, "times": times})

    def _pick_state(self, state: str, proc: bool) -> OpRecord | None:
        """An unfinished operation in `state`, of the real-worker target when `proc` (and there is one)."""
        found = None
        if proc:
            found = self.ledger.pick(self.rng, lambda r: r.state == state and r.target == PROC_TARGET)
        return found or self.ledger.pick(self.rng, lambda r: r.state == state)

    def _fault_outage(self) -> None:
        """Every status write answers 503 for 5-15 s (a short control-plane outage; workers must outlast it)."""
        seconds = self.rng.uniform(5, 15)
        path = rf"^{GROUP}/namespaces/[^/]+/delegatedoperations/[^/]+/status$"
        self.ledger.record_fault("outage", f"503 on every status write for {seconds:.0f} s")
        self.api.must("POST", "/__emulator/faults", {"code": 503, "method": "PATCH", "path": path, "times": -1})
        self.outage_until = time.monotonic() + seconds

    def _fault_expire_watches(self) -> None:
        self.ledger.record_fault("expire-watches", "every watch gets 410 Expired")
        self.api.call("POST", "/__emulator/watches/expire")

    def _fault_drop_watches(self) -> None:
        self.ledger.record_fault("drop-watches", "every watch stream is closed")
        self.api.call("POST", "/__emulator/watches/drop")

    def _fault_restart_apiserver(self) -> None:
        """kill -9 the kube-apiserver and start it again (real plane): every client's connections and watches drop,
        requests are refused for seconds, and watches resumed from before it get 410 Gone. Fails nothing."""
        self.ledger.record_fault("apiserver-restart", "kill -9 kube-apiserver, then start it again")
        self.restarts.append(self.control_plane.kill_apiserver_and_restart())

    def _fault_stall_etcd(self) -> None:
        """Freeze etcd for 2-6 s (real plane): the API server's requests hang meanwhile. Fails nothing."""
        seconds = self.rng.uniform(2, 6)
        self.ledger.record_fault("etcd-stall", f"etcd stopped (SIGSTOP) for {seconds:.1f} s")
        with self.control_plane.etcd_paused():
            self.stop.wait(seconds)

    def _fault_cancel(self) -> None:
        """Cancel as `dops fail` does: a CAS from the state seen to failed, naming who cancelled."""
        rec = self.ledger.pick(self.rng, lambda r: r.state in ("queued", "scheduled", "running") and not r.deleted)
        if rec is None:
            return
        state, stamp = rec.state, now()
        message = f"cancelled by the chaos suite (from {state})"
        patch = [
            {"op": "test", "path": "/status/runState", "value": state},
            {"op": "add", "path": "/status/runState", "value": "failed"},
            {"op": "add", "path": "/status/failedAt", "value": stamp},
            {"op": "add", "path": "/status/updatedAt", "value": stamp},
            {"op": "add", "path": "/status/cancelledBy", "value": "chaos suite"},
            {"op": "add", "path": "/status/cancelledAt", "value": stamp},
            {"op": "add", "path": "/status/result", "value": {"error": message, "errorMessage": message}},
        ]
        path = f"{GROUP}/namespaces/{NAMESPACE}/delegatedoperations/{rec.name}/status"
        if self._act("cancel", f"{rec.name} from {state}", rec.name, "PATCH", path, patch, content_type=JSON_PATCH):
            rec.cancelled = True

    def _fault_delete_op(self) -> None:
        """Delete an unfinished operation, half the time just after every watch expired (the deletion may fall
        in the operator's relist gap: issue 11's ghosts)."""
        rec = self.ledger.pick(self.rng, lambda r: r.state in ("queued", "scheduled", "running") and not r.deleted)
        if rec is None:
            return
        if self.cluster is None and self.rng.random() < 0.5:
            self._fault_expire_watches()
        path = f"{GROUP}/namespaces/{NAMESPACE}/delegatedoperations/{rec.name}"
        if self._act("delete-op", f"{rec.name} ({rec.state})", rec.name, "DELETE", path, BACKGROUND):
            rec.deleted = True

    def _fault_requeue(self) -> None:
        """Re-queue a running operation (FiftyOne's `set_queued`): a CAS from running to queued."""
        rec = self.ledger.pick(self.rng, lambda r: r.state == "running" and not r.deleted)
        if rec is None:
            return
        stamp = now()
        patch = [
            {"op": "test", "path": "/status/runState", "value": "running"},
            {"op": "add", "path": "/status/runState", "value": "queued"},
            {"op": "add", "path": "/status/queuedAt", "value": stamp},
            {"op": "add", "path": "/status/updatedAt", "value": stamp},
        ]
        path = f"{GROUP}/namespaces/{NAMESPACE}/delegatedoperations/{rec.name}/status"
        if self._act("requeue", rec.name, rec.name, "PATCH", path, patch, content_type=JSON_PATCH):
            rec.requeued = True

    # -- the whole run
    def run(self) -> Report:
        config = self.config
        self.say(f"chaos: {config.describe()}; work dir {self.work}")
        started = time.monotonic()
        plan = self.plan()
        submitter = threading.Thread(target=self._submit, args=(plan, started), name="chaos-submit", daemon=True)
        submitter.start()
        self._chaos(started + config.chaos_seconds)
        self.chaos_over.set()
        if self.cluster is None:
            self.api.call("DELETE", "/__emulator/faults")
        self.fleet.ensure_running()
        submitter.join(config.chaos_seconds + 30)
        self.say(f"chaos: faults stopped after {time.monotonic() - started:.0f} s; waiting for quiescence")
        quiesced, quiesce_took = self._quiesce(config.quiesce_seconds)
        final = {
            item["metadata"]["name"]: item
            for item in self.api.must("GET", f"{GROUP}/namespaces/{NAMESPACE}/delegatedoperations").get("items") or []
        }
        with self.ledger.lock:
            report = Report(
                config=config,
                ops=copy.deepcopy(self.ledger.ops),  # as of the final listing: the watches run on
                final=final,
                faults=list(self.ledger.faults),
                caps=dict(self.ledger.caps),
                max_active_ops=dict(self.ledger.max_active_ops),
                max_active_jobs=dict(self.ledger.max_active_jobs),
                max_active_jobs_at={t: list(v) for t, v in self.ledger.max_active_jobs_at.items()},
                over_cap=list(self.ledger.over_cap),
                kills=self.fleet.kills,
                operators=len(self.fleet.procs),
                takeovers=list(self.takeovers),
                restarts=list(self.restarts),
                seconds=time.monotonic() - started,
                quiesced=quiesced,
                quiesce_took=quiesce_took,
            )
        return report

    def _identity_lines(self, op: str) -> list[str]:
        """The operation as the server has it now against what this harness's watch saw last (uid,
        resourceVersion, state) and every field manager's last write: which writer set the state it is stuck in."""
        code, obj = self.api.call("GET", f"{GROUP}/namespaces/{NAMESPACE}/delegatedoperations/{op}", patience=5)
        with self.ledger.lock:
            rec = self.ledger.ops.get(op)
            seen = dict((rec.last if rec else {}).get("metadata") or {})
            seen_state = rec.state if rec else ""
            events = list(rec.seen) if rec else []
            history = (
                f"states {' > '.join(rec.states) or '-'}; touched by {', '.join(rec.touches) or '-'}" if rec else ""
            )
        lines = [
            f"watch saw: uid {str(seen.get('uid'))[:8]} rv {seen.get('resourceVersion')} state {seen_state or '-'}",
            history,
        ]
        lines += [f"watch event: {line}" for line in events]
        if code != 200:
            return [*lines, f"server: {code} {obj.get('message')}"]
        meta, status = obj["metadata"], obj.get("status") or {}
        lines.append(
            f"server: uid {meta['uid'][:8]} rv {meta.get('resourceVersion')} created {meta.get('creationTimestamp')} "
            f"state {status.get('runState')} attempt {status.get('attempt')} job {status.get('jobName')}"
        )
        for entry in meta.get("managedFields") or []:
            fields = json.dumps(entry.get("fieldsV1") or {}, separators=(",", ":"))
            lines.append(
                f"manager {entry.get('manager')} {entry.get('operation')} {entry.get('subresource') or ''} "
                f"at {entry.get('time')}: {fields[:300]}"
            )
        return lines

    def explain(self, op: str, why: str = "is stuck") -> str:
        """What a stuck operation (or one active when a cap was exceeded) and its Jobs and pods look like now, what
        this harness's worker did for it, and the operators' log lines naming it: enough to tell a product bug from
        a harness bug after the fact."""
        lines = [f"--- why {op} {why}"]
        lines += self._identity_lines(op)
        jobs = self.api.call("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", patience=5)[1].get("items") or []
        involved = set()
        for job in jobs:
            if job["metadata"]["name"].rsplit("-", 1)[0] != op:
                continue
            involved.add(job["metadata"]["uid"])
            lines.append(
                f"Job {job['metadata']['name']} uid {job['metadata']['uid'][:8]} suspend {job['spec'].get('suspend')}"
            )
            status = job.get("status") or {}
            counts = {k: status.get(k) for k in ("active", "ready", "terminating", "succeeded", "failed")}
            conditions = [
                f"{c.get('type')}={c.get('status')} {c.get('reason') or ''}" for c in status.get("conditions") or []
            ]
            lines.append(f"Job {job['metadata']['name']}: {counts} {conditions}")
        pods = self.api.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods", patience=5)[1].get("items") or []
        for pod in pods:
            if op_of(pod) != op:
                continue
            meta, status = pod["metadata"], pod.get("status") or {}
            involved.add(meta["uid"])
            owner = next((r["uid"][:8] for r in meta.get("ownerReferences") or []), None)
            lines.append(f"pod {meta['name']}: node {pod['spec'].get('nodeName')!r}, owner uid {owner}")
            states = [next(iter(c.get("state") or {"?": None})) for c in status.get("containerStatuses") or []]
            lines.append(
                f"pod {meta['name']} ({meta['uid'][:8]}): {status.get('phase')} containers {states} "
                f"deletion {meta.get('deletionTimestamp')} finalizers {meta.get('finalizers')}"
            )
        events = self.api.call("GET", f"/api/v1/namespaces/{NAMESPACE}/events", patience=5)[1].get("items") or []
        for event in events:
            target = event.get("involvedObject") or {}
            if target.get("uid") in involved or target.get("name") == op:
                source = (event.get("source") or {}).get("component")
                what = f"{target.get('kind')} {target.get('name')}: {event.get('reason')} ({source})"
                lines.append(f"event {what} {event.get('message')}")
        lines += [f"worker: {step}" for step in self.worker_trace.get(op, [])] or ["worker: never started"]
        for log in self.fleet.logs:
            if log.exists():
                named = [line for line in log.read_text(errors="replace").splitlines() if op in line]
                lines += [f"{log.name}: {line}" for line in named[-8:]]
        return "\n".join(lines)

    def _busy(self) -> set[str]:
        """The submitted operations not yet settled: not terminal and processed by the operator (deleted by the
        harness: not gone), or with a Job still active."""
        with self.ledger.lock:
            return {
                r.name
                for r in self.ledger.ops.values()
                if (not r.gone if r.deleted else not processed(r.last)) or r.active_jobs
            }

    def _quiesce(self, budget: float) -> tuple[bool, float]:
        """Wait until every submitted operation is settled (`_busy`, see `Quiescence`): (whether they all did,
        seconds waited)."""
        started = time.monotonic()
        quiescence = Quiescence(budget, started, self.config.operations)
        while (verdict := quiescence.verdict(self._busy(), len(self.ledger.ops), time.monotonic())) is None:
            time.sleep(0.5)
        return verdict, time.monotonic() - started


def run_chaos(config: ChaosConfig, log: Callable[[str], None] = print) -> Report:
    with ChaosRun(config, log) as run:
        try:
            report = run.run()
        finally:
            if run.harness_errors:
                log("chaos: harness errors:\n  " + "\n  ".join(run.harness_errors[:20]))
        problems = report.problems()
        if any(problems.values()):
            log(run.fleet.tail(60 if report.stuck() else 25))
            if report.stuck():
                log(run.fleet.stacks())
            stuck = set(report.stuck()) | {line.partition(":")[0] for line in report.jobs_left()}
            with run.ledger.lock:
                over_cap = set(run.ledger.over_cap_ops)
            for name in sorted(stuck)[:8]:
                log(run.explain(name))
            for name in sorted(over_cap - stuck):
                log(run.explain(name, "was active when its target's cap was first exceeded"))
    return report


def run_and_check(config: ChaosConfig) -> Report:
    """The chaos suite as a test: one run, its progress and figures printed as they come (`make chaos` runs
    pytest with -s), and an AssertionError listing every operation that breaks an invariant."""

    def say(text: str) -> None:
        print(text, flush=True)

    report = run_chaos(config, log=say)
    figures = report.line()
    print(figures, flush=True)
    print(report.details(), flush=True)
    problems = {title: items for title, items in report.problems().items() if items}
    assert not problems, f"{figures}\n{report.details()}"
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=None, help="operations to submit (DOPS_CHAOS_OPS, 300)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds of chaos (DOPS_CHAOS_SECONDS, 90)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (DOPS_CHAOS_SEED; default: random)")
    parser.add_argument("--plane", choices=PLANES, default="embedded", help="which control plane (embedded)")
    args = parser.parse_args(argv)
    config = ChaosConfig.from_env(
        os.environ, operations=args.ops, chaos_seconds=args.seconds, seed=args.seed, plane=args.plane
    )
    report = run_chaos(config)
    print(report.line())
    details = report.details()
    if details:
        print(details)
    return 1 if any(report.problems().values()) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "operator"))
    sys.exit(main())
