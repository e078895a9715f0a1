"""`dops ui`: serve the live dashboard on 127.0.0.1 with the user's own kubeconfig (see docs/ui.md).

It binds the loopback interface only (the page acts with the user's credentials), opens a browser
only when asked (--open), and prints its URL as one line so scripts can read it.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import webbrowser
from typing import Annotated

import typer

from ..command import RUNTIME_PANEL
from ..command import register as add
from ..errors import EXIT_USAGE, CliError
from ..options import AllNamespacesOption, NamespaceOption
from ..session import session


def ui(
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0 = pick a free one).")
    ] = 8765,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a web browser.")] = False,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show no actions and refuse them (rerun, cancel, delete, ...).")
    ] = False,
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
) -> None:
    """Serve a live web dashboard of operations on http://127.0.0.1:PORT/ until Ctrl-C.

    Operations as a live table (filters, counts, pages), one operation with its timeline, events and
    streaming log, actions (rerun, cancel, pin, label, archive, delete; not with --read-only) and the
    delegation targets. Uses your kubeconfig (--kubeconfig, --context); one watch serves every browser.
    """
    from ...ui.server import UiConfig, UiServer, running

    sess = session()
    ns = None if all_namespaces else sess.resolve_namespace(namespace)
    server = UiServer(sess.client(), UiConfig(namespace=ns, read_only=read_only))
    server.repo.list(ns, limit=1)  # reachable, allowed, CRDs installed: else one error line now

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with running(server, port) as url:
                where = "every namespace" if ns is None else f'namespace "{ns}"'
                mode = ", read-only" if read_only else ""
                sess.out.print(f"dops ui: {url} ({where}{mode}; Ctrl-C stops)", markup=False, soft_wrap=True)
                if open_browser:
                    webbrowser.open(url)
                await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        asyncio.run(serve())
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"port {port} on 127.0.0.1 is in use: choose another with --port (0 = any free one)"
            raise CliError(message, EXIT_USAGE) from None
        raise


def register(app: typer.Typer) -> None:
    add(app, ui, panel=RUNTIME_PANEL)
