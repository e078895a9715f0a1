"""Container "runs": a local process in its own process group, or a simulated run driven by a timer.

A process container is `command + args` executed directly (no shell) with
`start_new_session=True`, so the container is a process group: signals go to the whole group, and
when the main process exits whatever it left behind in the group is killed, as the PID namespace
of a real container would. stdout and stderr are pumped into the container's CRI log file chunk by
chunk (constant memory, whatever the output volume).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .logs import STDERR, STDOUT, LogWriter

# What containerd/runc put before an exec failure (runc 1.2 wording), and after it.
RUNC_PREFIX = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
    "runc create failed: unable to start container process: error during container init: "
)
RUNC_SUFFIX = ": unknown"
DRAIN_TIMEOUT = 2.0  # after the main process exits, how long output from the rest may still arrive

# Process groups still alive, killed at interpreter exit if a kubelet never got to stop them.
_LIVE_GROUPS: set[int] = set()


def _kill_leftovers() -> None:
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


atexit.register(_kill_leftovers)


@dataclass(frozen=True)
class Exit:
    exit_code: int
    reason: str  # Completed | Error | StartError | ContainerStatusUnknown
    message: str = ""


def exit_for(returncode: int) -> Exit:
    """A wait status as the runtime reports it: a signal n is exit code 128+n (SIGKILL → 137)."""
    code = 128 - returncode if returncode < 0 else returncode
    return Exit(code, "Completed" if code == 0 else "Error")


class StartError(Exception):
    """The runtime could not start the container; `str()` is the runtime's message."""

    def __init__(self, detail: str) -> None:
        super().__init__(RUNC_PREFIX + detail + RUNC_SUFFIX)


def resolve_executable(argv0: str, path_env: str, cwd: str) -> str:
    """Find the program as runc does: a name with `/` is a path, anything else is looked up in $PATH."""
    if not argv0:
        raise StartError("exec: no command specified")
    if "/" in argv0:
        candidate = argv0 if os.path.isabs(argv0) else os.path.join(cwd, argv0)
        if not os.path.exists(candidate):
            raise StartError(f'exec: "{argv0}": stat {argv0}: no such file or directory')
        if os.path.isdir(candidate) or not os.access(candidate, os.X_OK):
            raise StartError(f'exec: "{argv0}": permission denied')
        return candidate
    found = shutil.which(argv0, path=path_env)
    if found is None:
        raise StartError(f'exec: "{argv0}": executable file not found in $PATH')
    return found


class ProcessRunner:
    """One running container process (group). `done` resolves to its Exit once it is over."""

    def __init__(self, proc: asyncio.subprocess.Process, log: LogWriter) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.pgid = proc.pid  # start_new_session: the process leads its own session and group
        self.log = log
        _LIVE_GROUPS.add(self.pgid)
        assert proc.stdout is not None and proc.stderr is not None
        self._pumps = [
            asyncio.ensure_future(self._pump(proc.stdout, STDOUT)),
            asyncio.ensure_future(self._pump(proc.stderr, STDERR)),
        ]
        self.done: asyncio.Future[Exit] = asyncio.ensure_future(self._wait())

    @classmethod
    async def start(
        cls, argv: Sequence[str], executable: str, env: Mapping[str, str], cwd: str, log: LogWriter
    ) -> ProcessRunner:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                executable=executable,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise StartError(f'exec: "{argv[0]}": {(exc.strerror or str(exc)).lower()}') from exc
        return cls(proc, log)

    @property
    def running(self) -> bool:
        return not self.done.done()

    def signal(self, signum: int) -> None:
        if self.pgid in _LIVE_GROUPS:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signum)

    async def _pump(self, reader: asyncio.StreamReader, stream: bytes) -> None:
        while True:
            chunk = await reader.read(64 * 1024)
            if not chunk:
                return
            self.log.write(stream, chunk)

    async def _wait(self) -> Exit:
        try:
            returncode = await self.proc.wait()
        finally:
            # The container ends with its main process: kill what it left in its group.
            self.signal(signal.SIGKILL)
            _LIVE_GROUPS.discard(self.pgid)
        # Something that left the group (setsid) may hold the pipes open: do not wait on it forever.
        _, pending = await asyncio.wait(self._pumps, timeout=DRAIN_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            transport = getattr(self.proc, "_transport", None)
            if transport is not None:
                transport.close()
        self.log.finish()
        return exit_for(returncode)


class SimulatedRunner:
    """A container that runs for `duration` seconds (None: until signalled) and exits with `exit_code`."""

    pid: int | None = None

    def __init__(self, duration: float | None, exit_code: int, message: str = "") -> None:
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[Exit] = loop.create_future()
        self._message = message
        self._timer = loop.call_later(max(duration, 0.0), self._finish, exit_code) if duration is not None else None

    @property
    def running(self) -> bool:
        return not self.done.done()

    def _finish(self, code: int, message: str | None = None) -> None:
        if not self.done.done():
            text = self._message if message is None else message
            self.done.set_result(Exit(code, "Completed" if code == 0 else "Error", text))

    def signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT):
            if self._timer is not None:
                self._timer.cancel()
            self._finish(128 + signum, "")

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.done.done():
            self.done.cancel()
