"""Reading archived logs (`status.logPath`): a local path, a `file://` URL, or any fsspec URL (s3://, gs://…).

fsspec is optional (`pip install 'dops[archive]'` plus the filesystem's own package, e.g. s3fs);
local files need nothing. `.gz` archives are decompressed.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from .errors import EXIT_FAILED, EXIT_UNAVAILABLE, CliError


def _local_path(path: str) -> Path | None:
    if "://" not in path:
        return Path(path)
    parsed = urlparse(path)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return None


def _lines(handle: IO[Any]) -> Iterator[str]:
    for line in handle:
        text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
        yield text.rstrip("\r\n")


def read_archive(path: str) -> Iterator[str]:
    """The lines of an archived log; CliError (exit 3) when it is missing or unreadable from here."""
    local = _local_path(path)
    if local is not None:
        try:
            opener: Any = gzip.open if local.suffix == ".gz" else open
            with opener(local, "rb") as handle:
                yield from _lines(handle)
        except FileNotFoundError:
            raise CliError(
                f"the archived log {path} does not exist here (it is on the volume the operator writes to: "
                "read it where that volume is mounted, or archive logs to an object store URL)",
                EXIT_UNAVAILABLE,
            ) from None
        except OSError as exc:
            raise CliError(f"cannot read the archived log {path}: {exc.strerror or exc}", EXIT_UNAVAILABLE) from None
        return
    try:
        import fsspec
    except ImportError:
        raise CliError(
            f"reading the archived log {path} needs fsspec: pip install 'dops[archive]' "
            "(plus the filesystem's package, e.g. s3fs for s3://)",
            EXIT_FAILED,
        ) from None
    try:
        with fsspec.open(path, "rb", compression="infer") as handle:
            yield from _lines(handle)
    except FileNotFoundError:
        raise CliError(f"the archived log {path} does not exist", EXIT_UNAVAILABLE) from None
    except ImportError as exc:
        raise CliError(f"reading the archived log {path} needs another package: {exc}", EXIT_FAILED) from None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the archived log {path}: {exc}", EXIT_UNAVAILABLE) from None
