"""The `dops:e2e` image's entrypoint on the real plane's node agent (tests/e2e/realplane.py).

The image's ENTRYPOINT is `dops` (Dockerfile) and the chart gives only `args` (`operator`; workers get
`worker run NS/NAME` from the operator). On the node agent the image is an image-map rule whose `command` is this
module, run by the test's interpreter: it execs this checkout's `python -m dops ARGS` (same pid, same process group,
so signals, exit codes and termination messages are dops' own).

The node agent runs a container as a plain process of the host, without the container's mount and network
namespaces. Before the exec, this entrypoint gives dops the two pieces of its sandbox that it relies on:

- mounts: `DOPS_E2E_MOUNTS` (JSON `{container path: host directory}`). Every environment variable whose value is a
  mounted path, or a path under one, is rewritten to the host directory. The chart passes
  `DOPS_LOG_ARCHIVE=/var/lib/dops/logs`, the log PVC's mount path; on this node the PVC's volume is a hostPath PV,
  and without the rewrite the operator would archive into the host's own /var/lib/dops/logs.
- ports: `DOPS_E2E_PORTS` (comma-separated variable names). Each of these variables that holds a non-zero port
  gets a free port of 127.0.0.1 instead: in a pod the chart's fixed container ports (8080 metrics, 8081 health) are
  the pod's own, here they would be the host's and could be taken.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence

MOUNTS_ENV = "DOPS_E2E_MOUNTS"
PORTS_ENV = "DOPS_E2E_PORTS"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def mapped_path(value: str, mounts: Mapping[str, str]) -> str:
    """`value` with a leading mount path replaced by its host directory (the longest mount wins); else unchanged."""
    for container_path in sorted(mounts, key=len, reverse=True):
        prefix = container_path.rstrip("/")
        if value == prefix or value.startswith(prefix + "/"):
            return mounts[container_path].rstrip("/") + value[len(prefix) :]
    return value


def sandbox_env(env: Mapping[str, str], port: Callable[[], int] = free_port) -> dict[str, str]:
    """The environment dops runs with: mounted paths mapped to host directories, the named ports made free ones."""
    result = dict(env)
    mounts: dict[str, str] = json.loads(result.pop(MOUNTS_ENV, "") or "{}")
    ports = [name.strip() for name in result.pop(PORTS_ENV, "").split(",") if name.strip()]
    for name, value in list(result.items()):
        result[name] = mapped_path(value, mounts)
    for name in ports:
        if result.get(name, "0").strip() not in ("", "0"):
            result[name] = str(port())
    return result


def command(args: Sequence[str]) -> list[str]:
    """The image's ENTRYPOINT `dops` with the container's args, as this checkout's dops."""
    return [sys.executable, "-m", "dops", *args]


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    argv_ = command(args)
    os.execve(argv_[0], argv_, sandbox_env(os.environ))


if __name__ == "__main__":
    main()
