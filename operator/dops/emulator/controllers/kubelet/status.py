"""Pod status rules of the kubelet (`getPhase`, the pod conditions), applied to API-shaped container statuses.

Working on the same `containerStatuses` a client reads keeps the emulator honest: the phase and
conditions are derived exactly as kubelet_pods.go derives them from what it reports.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

POD_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def get_phase(spec: JSON, init_statuses: list[JSON], statuses: list[JSON], pod_is_terminal: bool) -> str:
    """kubelet getPhase for a pod without restartable (sidecar) init containers."""
    pending_init = 0
    failed_init = 0
    for status in init_statuses:
        state = status.get("state") or {}
        last = (status.get("lastState") or {}).get("terminated")
        if state.get("running") is not None:
            pending_init += 1
        elif state.get("terminated") is not None:
            if state["terminated"].get("exitCode") != 0:
                failed_init += 1
        elif state.get("waiting") is not None:
            if last is not None:
                if last.get("exitCode") != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1
    unknown = running = waiting = stopped = succeeded = 0
    for status in statuses:
        state = status.get("state") or {}
        if state.get("running") is not None:
            running += 1
        elif state.get("terminated") is not None:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif state.get("waiting") is not None:
            if (status.get("lastState") or {}).get("terminated") is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    policy = spec.get("restartPolicy", "Always")
    if failed_init > 0 and policy == "Never":
        return "Failed"
    if pod_is_terminal:
        return "Succeeded" if stopped == succeeded and stopped > 0 and not waiting else "Failed"
    if pending_init > 0 or waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(
    ctype: str,
    status: str,
    previous: dict[str, JSON],
    now: str,
    generation: int | None,
    reason: str = "",
    message: str = "",
) -> JSON:
    old = previous.get(ctype)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    out: JSON = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": since or now}
    if generation:
        out["observedGeneration"] = generation
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def pod_conditions(
    old_conditions: list[JSON],
    *,
    phase: str,
    sandbox_ready: bool,
    init_statuses: list[JSON],
    statuses: list[JSON],
    now: str,
    generation: int | None,
) -> list[JSON]:
    """PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled (+ foreign ones, kept)."""
    previous = {str(c.get("type")): c for c in old_conditions}
    conditions = [
        _condition("PodReadyToStartContainers", "True" if sandbox_ready else "False", previous, now, generation)
    ]
    incomplete = [
        s["name"]
        for s in init_statuses
        if ((s.get("state") or {}).get("terminated") or {}).get("exitCode") != 0
        or (s.get("state") or {}).get("terminated") is None
    ]
    if incomplete:
        conditions.append(
            _condition(
                "Initialized",
                "False",
                previous,
                now,
                generation,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(incomplete)}]",
            )
        )
    else:
        conditions.append(_condition("Initialized", "True", previous, now, generation))
    if phase in ("Succeeded", "Failed"):
        reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        ready = [("False", reason, "")]
    else:
        unready = [s["name"] for s in statuses if not s.get("ready")]
        if unready:
            ready = [("False", "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")]
        else:
            ready = [("True", "", "")]
    status, reason, message = ready[0]
    conditions.append(_condition("Ready", status, previous, now, generation, reason, message))
    conditions.append(_condition("ContainersReady", status, previous, now, generation, reason, message))
    scheduled = previous.get("PodScheduled")
    conditions.append(
        scheduled if scheduled is not None else _condition("PodScheduled", "True", previous, now, generation)
    )
    conditions.extend(c for c in old_conditions if c.get("type") not in POD_CONDITIONS)
    return conditions


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): 200ms, 1.5s, 10s, 1m20s, 5m0s, 1h0m0s."""
    if 0 < seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
