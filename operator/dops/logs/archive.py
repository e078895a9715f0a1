"""Log archive storage: a local directory or an fsspec URL (see the package docstring).

Writes are atomic for directories (a temporary file renamed into place) so a reader never sees a
half-written log; fsspec stores write the object in one `open(..., "wb")` (object stores publish on
close). Every failure becomes `ArchiveError` with a one-line message naming the location.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ArchiveError(Exception):
    """Storing or reading an archived log failed (one readable line)."""


def archive_key(namespace: str, operation: str, attempt: int | str, pod: str) -> str:
    """The archive-relative path of one attempt's log."""
    parts = [_SAFE.sub("_", p) for p in (namespace, operation, f"{attempt}-{pod}.log")]
    return "/".join(parts)


class LogArchive:
    """A log store rooted at a directory or an fsspec URL."""

    def __init__(self, location: str) -> None:
        if not location:
            raise ArchiveError("no log archive location configured (DOPS_LOG_ARCHIVE)")
        self.location = location.rstrip("/") or "/"
        self.is_url = bool(_URL.match(location)) and not location.startswith("file://")
        if location.startswith("file://"):
            self.location = location[len("file://") :].rstrip("/") or "/"

    def __repr__(self) -> str:
        return f"LogArchive({self.location!r})"

    def path_for(self, key: str) -> str:
        return f"{self.location}/{key}"

    # -------------------------------------------------------------------------------- writing
    def store(self, key: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Write the log; returns (path or URL, size in bytes)."""
        target = self.path_for(key)
        try:
            if self.is_url:
                return target, self._store_url(target, chunks)
            return target, self._store_file(Path(target), chunks)
        except ArchiveError:
            raise
        except Exception as exc:
            raise ArchiveError(f"cannot write {target}: {_one_line(exc)}") from exc

    @staticmethod
    def _store_file(path: Path, chunks: Iterable[bytes]) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        fd, tmp = tempfile.mkstemp(prefix=".dops-", suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    size += len(chunk)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    @staticmethod
    def _store_url(url: str, chunks: Iterable[bytes]) -> int:
        fsspec = _fsspec()
        size = 0
        with fsspec.open(url, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                size += len(chunk)
        return size

    # -------------------------------------------------------------------------------- reading
    def open_stream(self, path: str) -> Iterator[bytes]:
        """The archived log at `path` (as stored in status.logPath), chunk by chunk."""
        try:
            if _URL.match(path) and not path.startswith("file://"):
                fsspec = _fsspec()
                with fsspec.open(path, "rb") as handle:
                    while chunk := handle.read(64 * 1024):
                        yield chunk
                return
            local = path[len("file://") :] if path.startswith("file://") else path
            with open(local, "rb") as handle:
                while chunk := handle.read(64 * 1024):
                    yield chunk
        except ArchiveError:
            raise
        except Exception as exc:
            raise ArchiveError(f"cannot read archived log {path}: {_one_line(exc)}") from exc

    def read(self, path: str) -> bytes:
        return b"".join(self.open_stream(path))

    def delete(self, path: str) -> None:
        try:
            if _URL.match(path) and not path.startswith("file://"):
                fs, _, paths = _fsspec().get_fs_token_paths(path)
                fs.rm(paths[0])
            else:
                Path(path[len("file://") :] if path.startswith("file://") else path).unlink(missing_ok=True)
        except Exception as exc:
            raise ArchiveError(f"cannot delete archived log {path}: {_one_line(exc)}") from exc


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise ArchiveError(
            "archiving logs to a URL needs fsspec: pip install 'dops[archive]' (plus the protocol's driver, e.g. s3fs)"
        ) from exc
    return fsspec


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
