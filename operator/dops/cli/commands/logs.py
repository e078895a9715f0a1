"""`dops logs NAME [-f]`: an operation's log, from its pod while the pod exists, else from the archive."""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Iterable
from typing import Annotated, Any

import typer

from ...api import constants as c
from ...api.types import DelegatedOperationDocument, OperationNotFound
from ...domain.labels import label_value
from ...k8s import BadRequest, NotFound
from ...k8s.streams import read_pod_log
from ...service import DelegatedOperationService
from .. import render
from ..archive import read_archive
from ..command import register as add
from ..errors import EXIT_FAILED, EXIT_UNAVAILABLE, CliError, not_found
from ..ops import get_operation
from ..options import NamespaceOption
from ..session import Session, session

JSON = dict[str, Any]
WORKER_CONTAINER = "worker"
POLL_SECONDS = 0.5
# After an operation finished, how long `-f` waits for the operator to record the archived log.
ARCHIVE_GRACE_SECONDS = 15.0


def _emit(lines: Iterable[str]) -> None:
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")
        out.flush()


def _find_pod(sess: Session, doc: DelegatedOperationDocument) -> JSON | None:
    """The operation's pod: `status.podName`, else the newest pod labelled with the operation."""
    namespace = doc.namespace or sess.resolve_namespace(None)
    pods = sess.pods()
    if doc.pod_name:
        try:
            return pods.get(namespace, doc.pod_name)
        except NotFound:
            return None
    assert doc.id is not None
    items = pods.list(namespace, label_selector=f"{c.OPERATION_LABEL}={label_value(doc.id)}").items
    if not items:
        return None
    return max(items, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))


def _container(pod: JSON) -> str | None:
    names = [str(x.get("name")) for x in (pod.get("spec") or {}).get("containers") or []]
    if WORKER_CONTAINER in names:
        return WORKER_CONTAINER
    return names[0] if names else None


class _Reader:
    def __init__(self, sess: Session, svc: DelegatedOperationService, follow: bool, tail: int | None, timestamps: bool):
        self.sess = sess
        self.svc = svc
        self.follow = follow
        self.tail = tail
        self.timestamps = timestamps

    def refresh(self, doc: DelegatedOperationDocument) -> DelegatedOperationDocument:
        assert doc.id is not None
        try:
            return self.svc.get(doc.id)
        except OperationNotFound:
            raise not_found(doc.id, self.svc.namespace) from None

    def from_pod(self, doc: DelegatedOperationDocument, pod: JSON) -> bool:
        """Print the pod's log; False when the pod vanished before its log could be read."""
        name = str(pod["metadata"]["name"])
        namespace = str(pod["metadata"].get("namespace") or self.svc.namespace)
        container = _container(pod)
        while True:
            try:
                _emit(
                    read_pod_log(
                        self.sess.client(),
                        namespace,
                        name,
                        container=container,
                        follow=self.follow,
                        tail_lines=self.tail,
                        timestamps=self.timestamps,
                    )
                )
                return True
            except NotFound:
                return False
            except BadRequest as exc:  # the container has not started (or cannot start)
                if not self.follow:
                    raise CliError(f'operation "{doc.id}" has no logs yet: {exc.message}', EXIT_FAILED) from None
                doc = self.refresh(doc)
                if doc.run_state is not None and doc.run_state.is_terminal():
                    raise CliError(
                        f'operation "{doc.id}" {doc.run_state} before its pod started: {exc.message}'
                    ) from None
                time.sleep(POLL_SECONDS)

    def from_archive(self, doc: DelegatedOperationDocument) -> None:
        assert doc.log_path is not None
        lines: Iterable[str] = read_archive(doc.log_path)
        if self.tail is not None:
            lines = collections.deque(lines, maxlen=self.tail) if self.tail > 0 else []
        _emit(lines)


def logs(
    name: Annotated[str, typer.Argument(help="Operation name (or NAMESPACE/NAME).", show_default=False)],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Stream the log until the operation finishes.")
    ] = False,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines.")] = None,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", help="Prefix pod log lines with their timestamps.")
    ] = False,
    archived: Annotated[
        bool, typer.Option("--archived", help="Read the archived log even while the pod exists.")
    ] = False,
    namespace: NamespaceOption = None,
) -> None:
    """Print an operation's log.

    While the operation's pod exists the log comes from the pod (the pods/log endpoint); once the pod
    is gone it comes from the archive the operator wrote (status.logPath: a path or an fsspec URL).
    With -f, wait for the pod to start and stream until the operation finishes.
    """
    sess = session()
    svc, doc = get_operation(sess, name, namespace)
    reader = _Reader(sess, svc, follow, tail, timestamps)
    if archived:
        if not doc.log_path:
            raise CliError(f'operation "{doc.id}" has no archived log (yet)', EXIT_UNAVAILABLE)
        reader.from_archive(doc)
        return
    seen_pods: set[str] = set()
    grace_until: float | None = None
    while True:
        pod = _find_pod(sess, doc)
        pod_name = str(pod["metadata"]["name"]) if pod is not None else None
        if pod is not None and pod_name not in seen_pods:
            if reader.from_pod(doc, pod):
                seen_pods.add(str(pod_name))
                if not follow:
                    return
                doc = reader.refresh(doc)
                if doc.run_state is not None and doc.run_state.is_terminal():
                    return
                continue  # the container exited but the operation goes on: a retry's pod may follow
            doc = reader.refresh(doc)
            continue  # the pod vanished meanwhile: look again (archive, or a new pod)
        if seen_pods:
            if not follow:
                return
            doc = reader.refresh(doc)
            if doc.run_state is not None and doc.run_state.is_terminal():
                return
            time.sleep(POLL_SECONDS)
            continue
        # No pod (any more): the archive, once the operator recorded it.
        if doc.log_path:
            reader.from_archive(doc)
            return
        terminal = doc.run_state is not None and doc.run_state.is_terminal()
        if not follow:
            if terminal:
                why = f" (log upload error: {doc.log_upload_error})" if doc.log_upload_error else ""
                raise CliError(
                    f'operation "{doc.id}" has no logs: its pod is gone and no archived log is recorded{why}',
                    EXIT_UNAVAILABLE,
                )
            raise CliError(
                f'operation "{doc.id}" is {render.state_name(doc)}: it has no logs yet (use -f to wait for them)',
                EXIT_FAILED,
            )
        if terminal:
            if doc.log_upload_error:
                raise CliError(f'operation "{doc.id}" has no archived log: {doc.log_upload_error}', EXIT_UNAVAILABLE)
            grace_until = grace_until or time.monotonic() + ARCHIVE_GRACE_SECONDS
            if time.monotonic() >= grace_until:
                raise CliError(
                    f'operation "{doc.id}" has no logs: its pod is gone and no archived log was recorded',
                    EXIT_UNAVAILABLE,
                )
        time.sleep(POLL_SECONDS)
        doc = reader.refresh(doc)


def register(app: typer.Typer) -> None:
    add(app, logs)
