"""The node agent's watchdog: when the agent dies (even by SIGKILL), every container process group dies too.

Containers run in process groups (sessions) of their own, so that signals reach a whole container
and not the agent. The price is that they outlive an agent killed with -9: a parent-death signal
would reach only each group's leader, not what it started. So the agent starts this tiny process
in a session of its own (a `killpg` of the agent's group does not reach it) and tells it, on a
pipe, which groups exist (`+PGID`) and which are gone (`-PGID`), and which temporary directories
it made (`!PATH`: its work dir, the private keys it unpacked from the kubeconfig). When the pipe
reaches end of file (the agent exited, however it exited) the watchdog SIGKILLs every group still
listed and removes those directories (already gone after a graceful stop), then exits.

It is run as a script by path (`python -I watchdog.py`), stdlib only, so it starts in milliseconds
and does not import the emulator.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time


def main() -> int:
    # An interactive Ctrl-C reaches the agent, which stops its containers itself; the watchdog must outlive it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    directories: list[str] = []
    for raw in sys.stdin.buffer:
        if raw.startswith(b"!"):
            directories.append(os.fsdecode(raw[1:].rstrip(b"\n")))
            continue
        line = raw.strip()
        if len(line) < 2 or line[:1] not in (b"+", b"-") or not line[1:].isdigit():
            continue
        pgid = int(line[1:])
        if line[:1] == b"+":
            groups.add(pgid)
        else:
            groups.discard(pgid)
    # The agent is gone. Kill twice: a group may have been forking while the first signal landed.
    for _ in range(2):
        for pgid in groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        if groups:
            time.sleep(0.2)
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
