"""Per-invocation state: the global options, the consoles, and the lazily built API clients.

The root callback starts a `Session` (`start_session`); commands get it with `session()`. The
cluster configuration is loaded on first use, so `--help`, usage errors and `operator`/`worker`
(which build their own clients) never touch the kubeconfig.
"""

from __future__ import annotations

import contextvars
import os
import sys
from dataclasses import dataclass, field

from rich.console import Console

from ..k8s import DelegatedOperationRepository, KubeClient, ResourceClient, load_config
from ..service import DelegatedOperationService

# Retries on connection failures: few, so that an unreachable server is reported within a second.
CLI_RETRIES = 2


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    interactive = stream.isatty()
    width = None if interactive else int(os.environ.get("COLUMNS") or 200)
    return Console(stderr=stderr, width=width, highlight=False, soft_wrap=False)


@dataclass
class Session:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    debug: bool = False
    out: Console = field(default_factory=lambda: _console(False))
    err: Console = field(default_factory=lambda: _console(True))
    _client: KubeClient | None = None

    # ------------------------------------------------------------------------------------ clients
    def client(self) -> KubeClient:
        if self._client is None:
            config = load_config(self.kubeconfig, self.context)
            self._client = KubeClient(config, retries=CLI_RETRIES)
        return self._client

    @property
    def server(self) -> str | None:
        return self._client.config.server if self._client is not None else None

    def resolve_namespace(self, namespace: str | None) -> str:
        """The namespace a command works in: its own -n, the global -n, else the kubeconfig's."""
        return namespace or self.namespace or self.client().namespace

    def repo(self) -> DelegatedOperationRepository:
        return DelegatedOperationRepository(self.client())

    def service(self, namespace: str | None = None) -> DelegatedOperationService:
        return DelegatedOperationService(self.repo(), namespace=self.resolve_namespace(namespace))

    def pods(self) -> ResourceClient:
        return ResourceClient(self.client(), "", "v1", "pods")

    def events(self) -> ResourceClient:
        return ResourceClient(self.client(), "", "v1", "events")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------------------------ output
    def interactive(self) -> bool:
        """True when stderr is a terminal (live displays); otherwise progress is printed line by line."""
        return self.err.is_terminal


_CURRENT: contextvars.ContextVar[Session | None] = contextvars.ContextVar("dops_cli_session", default=None)


def start_session(sess: Session) -> Session:
    """Make `sess` the current invocation's session (the root callback does this for every invocation)."""
    _CURRENT.set(sess)
    return sess


def session() -> Session:
    """The current invocation's session (a default one when a command function is called directly)."""
    sess = _CURRENT.get()
    if sess is None:
        sess = start_session(Session())
    return sess
