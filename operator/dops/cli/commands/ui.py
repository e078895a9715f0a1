"""`dops ui`: serve the live dashboard on 127.0.0.1 with the user's own kubeconfig (see docs/ui.md).

It binds the loopback interface only (the page acts with the user's credentials), opens a browser
only when asked (--open), and prints its URL as one line so scripts can read it.

`--auth passthrough` is the chart's in-cluster dashboard (docs/ui.md "In the cluster"): the server uses
no credentials of its own, only each request's bearer token, so it may listen on other addresses
(`--address 0.0.0.0`); `--in-cluster` takes the API server's address and CA from the pod.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import webbrowser
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..command import RUNTIME_PANEL
from ..command import register as add
from ..errors import EXIT_USAGE, CliError
from ..options import AllNamespacesOption, NamespaceOption
from ..session import session


class Auth(StrEnum):
    kubeconfig = "kubeconfig"
    passthrough = "passthrough"


LOOPBACK = ("127.0.0.1", "localhost")


def ui(
    port: Annotated[
        int,
        typer.Option(
            "--port", min=0, max=65535, envvar="DOPS_UI_PORT", help="Port on 127.0.0.1 (0 = pick a free one)."
        ),
    ] = 8765,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a web browser.")] = False,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show no actions and refuse them (rerun, cancel, delete, ...).")
    ] = False,
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    auth: Annotated[
        Auth,
        typer.Option(
            "--auth",
            help="kubeconfig: act with your kubeconfig (loopback only). passthrough: act only with each "
            "request's own bearer token (the in-cluster dashboard).",
        ),
    ] = Auth.kubeconfig,
    in_cluster: Annotated[
        bool,
        typer.Option("--in-cluster", help="Find the API server from the pod (with --auth passthrough)."),
    ] = False,
    api_ca: Annotated[
        Path | None,
        typer.Option("--api-ca", help="The API server's CA with --in-cluster (default: the pod's ca.crt)."),
    ] = None,
    address: Annotated[
        str,
        typer.Option(
            "--address",
            envvar="DOPS_UI_ADDRESS",
            help="Address to listen on; not loopback only with --auth passthrough.",
        ),
    ] = "127.0.0.1",
) -> None:
    """Serve a live web dashboard of operations on http://127.0.0.1:PORT/ until Ctrl-C.

    Operations as a live table (filters, counts, pages), one operation with its timeline, events and
    streaming log, actions (rerun, cancel, pin, label, archive, delete; not with --read-only) and the
    delegation targets. Uses your kubeconfig (--kubeconfig, --context); one watch serves every browser.
    """
    from ...k8s import KubeClient, bearer_config, in_cluster_endpoint, load_config
    from ...ui.server import UiConfig, UiServer, running

    sess = session()
    passthrough = auth is Auth.passthrough
    if not passthrough and address not in LOOPBACK:
        message = (
            f"--address {address}: with --auth kubeconfig the page acts with your credentials, so it listens on "
            "127.0.0.1 only (--auth passthrough serves others)"
        )
        raise CliError(message, EXIT_USAGE)
    if in_cluster and not passthrough:
        raise CliError(
            "--in-cluster needs --auth passthrough: the dashboard never acts as its own ServiceAccount", EXIT_USAGE
        )
    if passthrough:
        # Where the API server is and which CA to trust; never whose credentials (each request brings its own).
        base = in_cluster_endpoint(api_ca) if in_cluster else load_config(sess.kubeconfig, sess.context)
        ns = None if all_namespaces else (namespace or sess.namespace or base.namespace)
        kube = KubeClient(bearer_config(base, ""), retries=1)
        server = UiServer(kube, UiConfig(namespace=ns, read_only=read_only, passthrough=True))
    else:
        ns = None if all_namespaces else sess.resolve_namespace(namespace)
        server = UiServer(sess.client(), UiConfig(namespace=ns, read_only=read_only))
        server.repo.list(ns, limit=1)  # reachable, allowed, CRDs installed: else one error line now

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with running(server, port, address) as url:
                where = "every namespace" if ns is None else f'namespace "{ns}"'
                mode = ", read-only" if read_only else ""
                mode += ", each request acts with its own token" if passthrough else ""
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
            message = f"port {port} on {address} is in use: choose another with --port (0 = any free one)"
            raise CliError(message, EXIT_USAGE) from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            raise CliError(f"cannot listen on {address}:{port}: {exc.strerror or exc}", EXIT_USAGE) from None
        raise


def register(app: typer.Typer) -> None:
    add(app, ui, panel=RUNTIME_PANEL)
