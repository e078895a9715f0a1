"""Fixtures for the `dops ui` tests: the operator environment of tests/integration (an embedded control
plane, the operator in a thread, real worker processes) and a dashboard served from a thread.

`ui_server(env, namespace, read_only=False)` is a context manager yielding a `RunningUi` (its URL and
the `UiServer`); the server stops when the block ends, whatever happened inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from dops.k8s import KubeClient
from dops.ui.server import UiConfig, UiServer, running
from tests.integration.operator_env import OperatorEnv, namespace, operator_env

__all__ = ["RunningUi", "namespace", "operator_env", "ui_server"]


@dataclass
class RunningUi:
    url: str
    server: UiServer

    @property
    def token(self) -> str:
        return self.server.config.token


@contextlib.contextmanager
def serve_in_thread(server: UiServer) -> Iterator[RunningUi]:
    """Run `server` on 127.0.0.1 (a free port) in its own event loop thread until the block ends."""
    ready = threading.Event()
    box: dict[str, object] = {}
    loop = asyncio.new_event_loop()

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        try:
            async with running(server, 0) as url:
                box["url"] = url
                ready.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="dops-ui-test", daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "dops ui did not start within 30 s"
        if "error" in box:
            raise AssertionError(f"dops ui failed to start: {box['error']!r}")
        if server.local is not None:  # passthrough has no shared cache: each token's view lists on first use
            assert server.cache.synced.wait(30), "dops ui did not list operations within 30 s"
        yield RunningUi(str(box["url"]), server)
    finally:
        stop = box.get("stop")
        if isinstance(stop, asyncio.Event):
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close() if not thread.is_alive() else None


@contextlib.contextmanager
def ui_server(env: OperatorEnv, namespace: str | None, *, read_only: bool = False) -> Iterator[RunningUi]:
    """A dashboard on `namespace` (None: all) with its own client, as `dops ui` builds it."""
    kube = KubeClient(env.kube.config)
    try:
        with serve_in_thread(UiServer(kube, UiConfig(namespace=namespace, read_only=read_only))) as ui:
            yield ui
    finally:
        kube.close()
