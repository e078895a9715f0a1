"""Container logs: written in the CRI log format, served by the pods/log endpoint (spec S13).

Each container run ("attempt") gets its own file, like `/var/log/pods/<ns>_<pod>_<uid>/<c>/<n>.log`
on a node. Each line is a CRI record: `<RFC3339Nano> <stdout|stderr> <F|P> <text>`; lines longer
than 16 KiB are split into partial (`P`) records as containerd does. Because every record carries
its own timestamp, `timestamps`, `sinceSeconds` and `sinceTime` work on stored logs. Files rotate
at `containerLogMaxSize` keeping `containerLogMaxFiles`, so a process that prints gigabytes uses
bounded disk and constant memory; the endpoint streams from disk in chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from ... import errors
from ...clock import parse_time

JSON = dict[str, Any]

PARTIAL_MAX = 16 * 1024  # containerd's maximum record payload
CHUNK = 64 * 1024
STDOUT = b"stdout"
STDERR = b"stderr"

_second_cache: tuple[int, bytes] = (-1, b"")


def timestamp_ns(ns: int) -> bytes:
    """RFC3339Nano with a fixed 9-digit fraction (`2026-01-02T03:04:05.123456789Z`): sorts as text."""
    global _second_cache
    seconds, fraction = divmod(ns, 1_000_000_000)
    if _second_cache[0] != seconds:
        _second_cache = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode())
    return _second_cache[1] + b".%09dZ" % fraction


def timestamp_of(moment: datetime) -> bytes:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S").encode() + b".%09dZ" % (moment.microsecond * 1000)


class LogWriter:
    """Appends CRI records for one container run; readers following it are woken on every write."""

    def __init__(self, path: Path, max_bytes: int = 10 * 1024 * 1024, max_files: int = 5) -> None:
        self.path = path
        self.max_bytes = max(max_bytes, 4096)
        self.max_files = max(max_files, 1)
        self.rotations = 0
        self.closed = False
        self._file: IO[bytes] | None = open(path, "ab")  # noqa: SIM115 - lives as long as the container
        self._size = self._file.tell()
        self._pending: dict[bytes, bytes] = {STDOUT: b"", STDERR: b""}
        self._changed = asyncio.Event()

    # ----------------------------------------------------------------------------- writing
    def write(self, stream: bytes, data: bytes) -> None:
        if not data or self.closed:
            return
        stamp = timestamp_ns(time.time_ns())
        buffer = self._pending[stream] + data if self._pending[stream] else data
        lines = buffer.split(b"\n")
        rest = lines.pop()
        head = stamp + b" " + stream
        if not lines or max(map(len, lines)) <= PARTIAL_MAX:
            out = [head + b" F " + line + b"\n" for line in lines]
        else:
            out = []
            for line in lines:
                while len(line) > PARTIAL_MAX:
                    out.append(head + b" P " + line[:PARTIAL_MAX] + b"\n")
                    line = line[PARTIAL_MAX:]
                out.append(head + b" F " + line + b"\n")
        while len(rest) > PARTIAL_MAX:
            out.append(head + b" P " + rest[:PARTIAL_MAX] + b"\n")
            rest = rest[PARTIAL_MAX:]
        self._pending[stream] = rest
        if out:
            self._emit(b"".join(out))

    def write_text(self, text: str, stream: bytes = STDOUT) -> None:
        self.write(stream, text.encode())

    def finish(self) -> None:
        """The container is gone: flush unterminated lines as full records and wake every follower."""
        if self.closed:
            return
        stamp = timestamp_ns(time.time_ns())
        tail = b"".join(stamp + b" " + stream + b" F " + rest + b"\n" for stream, rest in self._pending.items() if rest)
        self._pending = {STDOUT: b"", STDERR: b""}
        if tail:
            self._emit(tail)
        if self._file is not None:
            self._file.close()
            self._file = None
        self.closed = True
        self._notify()

    def _emit(self, data: bytes) -> None:
        if self._file is None:
            return
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        if self._size >= self.max_bytes:
            self._rotate()
        self._notify()

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        if self.max_files <= 1:
            self.path.unlink(missing_ok=True)
        else:
            oldest = self._rotated(self.max_files - 1)
            oldest.unlink(missing_ok=True)
            for index in range(self.max_files - 2, 0, -1):
                source = self._rotated(index)
                if source.exists():
                    source.rename(self._rotated(index + 1))
            self.path.rename(self._rotated(1))
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0
        self.rotations += 1

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ----------------------------------------------------------------------------- reading
    def _rotated(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def files(self) -> list[Path]:
        """Retained files, oldest first."""
        rotated = [self._rotated(i) for i in range(self.max_files - 1, 0, -1)]
        return [p for p in rotated if p.exists()] + ([self.path] if self.path.exists() else [])

    def changed(self) -> asyncio.Event:
        return self._changed

    def tail_text(self, lines: int, max_bytes: int) -> str:
        """The last `lines` lines, at most the last `max_bytes` bytes (FallbackToLogsOnError)."""
        handles: list[IO[bytes]] = [open(p, "rb") for p in self.files()]  # noqa: SIM115
        try:
            index, offset = _tail_start(handles, lines)
            out = bytearray()
            for record in _records(handles, index, offset):
                parsed = _parse(record)
                if parsed is not None:
                    out += parsed[3] + (b"\n" if parsed[2] == b"F" else b"")
                    if len(out) > 4 * max_bytes:
                        del out[: len(out) - max_bytes]
            return bytes(out[-max_bytes:]).decode(errors="replace")
        finally:
            for handle in handles:
                handle.close()


def _parse(record: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    parts = record.split(b" ", 3)
    if len(parts) < 3:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return parts[0], parts[1], parts[2], content


def _tail_start(handles: list[IO[bytes]], lines: int) -> tuple[int, int]:
    """(file index, offset) where the last `lines` records begin; every file ends with a newline."""
    if lines <= 0:
        return len(handles), 0
    remaining = lines
    for index in range(len(handles) - 1, -1, -1):
        handle = handles[index]
        position = handle.seek(0, os.SEEK_END)
        count = 0
        while position > 0:
            start = max(0, position - CHUNK)
            handle.seek(start)
            block = handle.read(position - start)
            end = len(block)
            while True:
                newline = block.rfind(b"\n", 0, end)
                if newline < 0:
                    break
                count += 1
                if count == remaining + 1:
                    return index, start + newline + 1
                end = newline
            position = start
        remaining -= count
        if remaining <= 0:
            return index, 0
    return 0, 0


def _records(handles: list[IO[bytes]], index: int, offset: int) -> Iterator[bytes]:
    """Complete records from (index, offset) to the current end of the last file."""
    for position in range(index, len(handles)):
        handle = handles[position]
        handle.seek(offset if position == index else 0)
        carry = b""
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                break
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            yield from lines


# --------------------------------------------------------------------------------------------
# The pods/log endpoint.


@dataclass
class LogOptions:
    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    since: bytes | None = None  # RFC3339Nano lower bound
    tail_lines: int | None = None
    limit_bytes: int | None = None


_BOOL = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True}
_BOOL.update({"0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False})


def _parse_bool(query: dict[str, str], key: str) -> bool:
    if key not in query:
        return False
    value = query[key]
    if value == "":
        return True
    if value not in _BOOL:
        raise errors.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax')
    return _BOOL[value]


def _parse_int(query: dict[str, str], key: str) -> int | None:
    if key not in query or query[key] == "":
        return None
    try:
        return int(query[key])
    except ValueError:
        raise errors.bad_request(f'strconv.ParseInt: parsing "{query[key]}": invalid syntax') from None


def _invalid(pod_name: str, causes: list[tuple[str, str, str]]) -> errors.APIError:
    """422 on kind PodLogOptions, as ValidatePodLogOptions reports it."""
    messages = [f"{f}: {m}" if f else m for f, m, _ in causes]
    summary = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    return errors.APIError(
        422,
        "Invalid",
        f'PodLogOptions "{pod_name}" is invalid: {summary}',
        {
            "name": pod_name,
            "kind": "PodLogOptions",
            "causes": [{"reason": r, "message": m, "field": f} for f, m, r in causes],
        },
    )


def parse_log_options(pod_name: str, query: dict[str, str], now: datetime) -> LogOptions:
    opts = LogOptions(container=query.get("container", ""))
    opts.follow = _parse_bool(query, "follow")
    opts.previous = _parse_bool(query, "previous")
    opts.timestamps = _parse_bool(query, "timestamps")
    since_seconds = _parse_int(query, "sinceSeconds")
    opts.tail_lines = _parse_int(query, "tailLines")
    opts.limit_bytes = _parse_int(query, "limitBytes")
    since_time: datetime | None = None
    if query.get("sinceTime"):
        since_time = parse_time(query["sinceTime"])
        if since_time is None:
            raise errors.bad_request(
                f'parsing time "{query["sinceTime"]}" as "2006-01-02T15:04:05Z07:00": cannot parse'
            )
    causes: list[tuple[str, str, str]] = []
    if opts.tail_lines is not None and opts.tail_lines < 0:
        causes.append(
            ("tailLines", f"Invalid value: {opts.tail_lines}: must be greater than or equal to 0", "FieldValueInvalid")
        )
    if opts.limit_bytes is not None and opts.limit_bytes < 1:
        causes.append(("limitBytes", f"Invalid value: {opts.limit_bytes}: must be greater than 0", "FieldValueInvalid"))
    if since_seconds is not None and since_time is not None:
        causes.append(
            ("", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified", "FieldValueForbidden")
        )
    elif since_seconds is not None and since_seconds < 1:
        causes.append(("sinceSeconds", f"Invalid value: {since_seconds}: must be greater than 0", "FieldValueInvalid"))
    if causes:
        raise _invalid(pod_name, causes)
    if since_seconds is not None:
        since_time = now - timedelta(seconds=since_seconds)
    if since_time is not None:
        opts.since = timestamp_of(since_time)
    return opts


def all_container_names(pod: JSON) -> list[str]:
    spec = pod.get("spec") or {}
    return [
        str(c.get("name", ""))
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]


def select_container(pod: JSON, requested: str) -> str:
    """The apiserver's validateContainer (pod/strategy.go)."""
    name = pod["metadata"]["name"]
    containers = (pod.get("spec") or {}).get("containers") or []
    if not requested:
        if len(containers) == 1:
            return str(containers[0].get("name", ""))
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(all_container_names(pod))}]"
        )
    if requested not in all_container_names(pod):
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def container_log_id(pod: JSON, container: str, previous: bool) -> str:
    """The kubelet's validateContainerLogStatus: which container instance's log to serve, or 400."""
    status = pod.get("status") or {}
    name = pod["metadata"]["name"]
    found: JSON | None = None
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for entry in status.get(key) or []:
            if entry.get("name") == container:
                found = entry
                break
        if found is not None:
            break
    if found is None:
        raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
    state = found.get("state") or {}
    last = (found.get("lastState") or {}).get("terminated")
    if previous:
        if not last or not last.get("containerID"):
            raise errors.bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        return str(last["containerID"])
    if state.get("running") is not None:
        return str(found.get("containerID", ""))
    terminated = state.get("terminated")
    if terminated is not None:
        if terminated.get("containerID"):
            return str(terminated["containerID"])
        if last and last.get("containerID"):
            return str(last["containerID"])
        raise errors.bad_request(f'container "{container}" in pod "{name}" is terminated')
    if last is not None:
        if not last.get("containerID"):
            raise errors.bad_request(f'container "{container}" in pod "{name}" is terminated')
        return str(last["containerID"])
    waiting = state.get("waiting")
    if waiting is not None:
        reason = waiting.get("reason", "")
        if reason == "ErrImagePull":
            raise errors.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: image can\'t be pulled'
            )
        if reason == "ImagePullBackOff":
            raise errors.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: trying and failing to pull image'
            )
        raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start - no logs yet')


_CONTENT_TYPE = {"Content-Type": "text/plain"}


def empty_log() -> web.StreamResponse:
    """What the apiserver answers for a pod no node runs yet: 204 No Content, no body and no Content-Type
    (the log location is nil, so the handler writes no stream)."""
    return web.Response(status=204)


class _Output:
    """Buffers formatted log bytes into response writes and enforces limitBytes."""

    def __init__(self, response: web.StreamResponse, limit: int | None) -> None:
        self.response = response
        self.remaining = limit
        self.buffer = bytearray()

    @property
    def full(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def add(self, data: bytes) -> None:
        if self.remaining is not None:
            data = data[: self.remaining]
            self.remaining -= len(data)
        self.buffer += data

    async def flush(self, force: bool = False) -> None:
        if self.buffer and (force or len(self.buffer) >= CHUNK):
            data = bytes(self.buffer)
            self.buffer.clear()
            await self.response.write(data)


async def stream_log(request: web.Request, writer: LogWriter | None, opts: LogOptions) -> web.StreamResponse:
    """Serve one container run's log with the query's options; follow until the run ends."""
    response = web.StreamResponse(status=200, headers=_CONTENT_TYPE)
    response.enable_chunked_encoding()
    await response.prepare(request)
    if writer is None:
        await response.write_eof()
        return response
    out = _Output(response, opts.limit_bytes)
    handles: list[IO[bytes]] = []
    try:
        # Snapshot the follow state before reading, so a write racing the read wakes us.
        changed = writer.changed()
        closed_at_start = writer.closed
        rotations = writer.rotations
        handles = [open(p, "rb") for p in writer.files()]  # noqa: SIM115
        index, offset = _tail_start(handles, opts.tail_lines) if opts.tail_lines is not None else (0, 0)
        if index >= len(handles) and handles:
            index, offset = len(handles) - 1, handles[-1].seek(0, os.SEEK_END)
        carry = b""
        # Past records.
        for position in range(index, len(handles)):
            handle = handles[position]
            handle.seek(offset if position == index else 0)
            carry = await _pump(handle, b"", out, opts)
            if out.full:
                break
        current = handles[-1] if handles else None
        # Follow.
        while opts.follow and not closed_at_start and not out.full:
            await out.flush(force=True)
            if not writer.closed:
                await changed.wait()
            changed = writer.changed()
            finished = writer.closed
            if current is not None:
                carry = await _pump(current, carry, out, opts)
            if writer.rotations != rotations and not out.full:
                rotations = writer.rotations
                if current is not None:
                    current.close()
                    handles.remove(current)
                current = open(writer.path, "rb") if writer.path.exists() else None  # noqa: SIM115
                if current is not None:
                    handles.append(current)
                    carry = await _pump(current, b"", out, opts)
            elif current is None and writer.path.exists():
                current = open(writer.path, "rb")  # noqa: SIM115
                handles.append(current)
                carry = await _pump(current, b"", out, opts)
            if finished:
                break
        await out.flush(force=True)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
    except ConnectionError:
        pass  # the client went away
    finally:
        for handle in handles:
            handle.close()
    return response


async def _pump(handle: IO[bytes], carry: bytes, out: _Output, opts: LogOptions) -> bytes:
    """Format every complete record from the handle's position to its end; returns the incomplete rest."""
    while not out.full:
        chunk = handle.read(CHUNK)
        if not chunk:
            break
        lines = (carry + chunk).split(b"\n") if carry else chunk.split(b"\n")
        carry = lines.pop()
        for record in lines:
            parsed = _parse(record)
            if parsed is None:
                continue
            stamp, _, tag, content = parsed
            if opts.since is not None and stamp < opts.since:
                continue
            line = content + b"\n" if tag == b"F" else content
            out.add(stamp + b" " + line if opts.timestamps else line)
            if out.full:
                break
        await out.flush()
    return carry
