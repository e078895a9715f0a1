"""Long-running processes a test starts (`dops dev`, `dops watch`), and proof that none outlives it.

Each process starts in a session of its own (`start_new_session=True`), so that it and everything it
starts can be found again in /proc (by session id and by parentage: pods may start sessions of their
own) and stopped by process group even when the test fails half-way. Output is read by a thread, so a
chatty process never blocks on a full pipe while the test does something else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def interrupt_on_sigterm(signum: int, frame: object) -> None:
    """A SIGTERM handler: raise KeyboardInterrupt once, so that a test run stopped by SIGTERM (a CI timeout,
    `kill`) runs every teardown as Ctrl-C does, instead of ending at once and leaving what it started running.
    A repeated SIGTERM is ignored so that it cannot cut that teardown short (SIGKILL still can)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ... (None: gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for candidate in _pids():
        fields = _stat(candidate)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(candidate)
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def session_members(sid: int) -> set[int]:
    """Live processes of session `sid` (a process started with start_new_session has sid == its pid)."""
    members = set()
    for candidate in _pids():
        fields = _stat(candidate)
        if fields is not None and fields[0] != "Z" and int(fields[3]) == sid:
            members.add(candidate)
    return members


def leftovers(proc: subprocess.Popen[str], seen: set[int]) -> set[int]:
    """What is still alive of `proc`'s session and of the processes `seen` below it earlier."""
    return {p for p in session_members(proc.pid) | seen if alive(p)}


def kill_everything(proc: subprocess.Popen[str], seen: set[int] | None = None) -> None:
    """SIGKILL `proc`'s process group, its descendants and `seen` (the last resort of a failing test)."""
    targets = descendants(proc.pid) | (seen or set())
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in targets:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


class Background:
    """A process in a session of its own whose combined output is collected line by line."""

    def __init__(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> str:
        """The first output line containing `text`; AssertionError (with the output) on exit or timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                shown = "\n".join(self.lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"{self.argv} exited {self.proc.returncode} before {text!r}:\n{shown}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.argv} did not print {text!r} within {timeout} s:\n{shown}")
                self._changed.wait(min(left, 0.5))

    def interrupt(self, timeout: float = 45) -> int:
        """Ctrl-C as `kill -INT PID` sends it (to the process, not its group); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def close(self, seen: set[int] | None = None) -> None:
        """Make sure nothing of it is left (SIGKILL by group and by descendant), whatever happened before."""
        if self.proc.poll() is None or leftovers(self.proc, seen or set()):
            kill_everything(self.proc, seen)
        self._reader.join(5)
