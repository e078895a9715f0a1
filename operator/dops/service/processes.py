"""Process-tree termination for monitored executions (no third-party dependency).

`kill_process_tree(process)` does what FiftyOne's monitor does with psutil: SIGTERM to every
descendant and to the child, wait up to `grace` seconds, SIGKILL whatever is left. The child is
started in its own session (`start_new_session=True`), so its process group is signalled too, which
also reaches descendants whose parent already exited. Descendants are found through /proc (Linux);
elsewhere the process group alone is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

PROC = Path("/proc")


def _parent_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    if not PROC.is_dir():
        return children
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) < 2:
            continue
        with contextlib.suppress(ValueError):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (children first)."""
    tree = _parent_map()
    out: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop(0)
        if child in out:
            continue
        out.append(child)
        stack.extend(tree.get(child, []))
    return out


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return True
    state = text[text.rfind(")") + 2 :].split()[:1]
    return state != ["Z"]


def kill_process_tree(process: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """Terminate `process` and its descendants (SIGTERM, then SIGKILL after `grace` s); returns its exit code."""
    if process.poll() is not None:
        _killpg(process.pid, signal.SIGKILL)  # leftovers of an exited session leader
        return process.returncode
    family = descendants(process.pid)
    _signal(family, signal.SIGTERM)
    _signal([process.pid], signal.SIGTERM)
    _killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    while time.monotonic() < deadline and any(_alive(p) for p in family):
        time.sleep(0.05)
    survivors = [p for p in family if _alive(p)]
    _signal(survivors, signal.SIGKILL)
    _killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    return process.returncode


def describe_exit(code: int | None) -> str:
    """`exit code 3` / `killed by signal SIGKILL` / `still running`."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
