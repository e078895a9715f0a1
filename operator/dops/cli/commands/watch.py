"""`dops watch`: a live table of operations (list, then follow the watch stream).

Ctrl-C ends it with exit code 130, as every command (the docs' exit-code table): a script can tell
"interrupted" from "every operation finished". With --until-done, "every shown operation is done" is
also true when none is shown, so an empty namespace ends the watch at once instead of never.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live

from ...api.types import DelegatedOperationDocument
from ...domain import query
from .. import render
from ..command import register as add
from ..follow import Follower
from ..ops import join_selectors, now
from ..options import (
    AllNamespacesOption,
    FieldSelectorOption,
    NamespaceOption,
    SelectorOption,
    State,
    TimeoutOption,
    parse_duration,
)
from ..session import Session, session

JSON = dict[str, Any]


class Board:
    """The operations currently matching, keyed by (namespace, name); thread-safe for the live display."""

    def __init__(self, q: query.Query, namespaces: bool, limit: int | None) -> None:
        self.q = q
        self.namespaces = namespaces
        self.limit = limit
        self.lock = threading.Lock()
        self.docs: dict[tuple[str, str], DelegatedOperationDocument] = {}

    @staticmethod
    def key(obj: JSON) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return str(meta.get("namespace") or ""), str(meta.get("name") or "")

    def replace(self, objs: list[JSON]) -> None:
        with self.lock:
            self.docs = {self.key(o): DelegatedOperationDocument.from_resource(o) for o in objs if self.q.matches(o)}

    def apply(self, kind: str, obj: JSON) -> DelegatedOperationDocument | None:
        """Apply one watch event; returns the document when the board changed (None otherwise)."""
        key = self.key(obj)
        doc = DelegatedOperationDocument.from_resource(obj)
        with self.lock:
            if kind == "DELETED" or not self.q.matches(obj):
                return self.docs.pop(key, None) and doc
            self.docs[key] = doc
            return doc

    def sorted(self) -> list[DelegatedOperationDocument]:
        with self.lock:
            docs = sorted(self.docs.values(), key=lambda d: (d.namespace or "", d.id or ""))
        docs = query.sort_documents(docs, "queued_at", True, lambda d, f: getattr(d, f, None))
        return docs[: self.limit] if self.limit else docs

    def empty(self) -> bool:
        with self.lock:
            return not self.docs

    def all_done(self) -> bool:
        """Every operation shown is completed or failed (true when none is shown: nothing to wait for)."""
        with self.lock:
            docs = list(self.docs.values())
        return all(d.run_state is not None and d.run_state.is_terminal() for d in docs)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        docs = self.sorted()
        if not docs:
            yield "No operations yet: waiting for changes (Ctrl-C to stop)."
            return
        yield render.operations_table(docs, now(), namespaces=self.namespaces)


def watch(
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    state: Annotated[
        State | None, typer.Option("-s", "--state", case_sensitive=False, help="Only operations in this state.")
    ] = None,
    operator: Annotated[str | None, typer.Option("--operator", help="Only this operator URI.")] = None,
    target: Annotated[str | None, typer.Option("-t", "--target", help="Only this delegation target.")] = None,
    search: Annotated[
        str | None, typer.Option("-m", "--search", help="Regular expression matched against operator and label.")
    ] = None,
    include_archived: Annotated[
        bool, typer.Option("-a", "--include-archived", help="Include archived operations.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="Show at most this many (newest first).")] = None,
    selector: SelectorOption = None,
    field_selector: FieldSelectorOption = None,
    until_done: Annotated[
        bool, typer.Option("--until-done", help="Stop once every shown operation is completed or failed.")
    ] = False,
    timeout: TimeoutOption = None,
) -> None:
    """Watch operations change, as a live table (one line per change when stdout is not a terminal).

    Runs until Ctrl-C, --timeout, or (with --until-done) until every operation shown has finished.
    """
    sess = session()
    seconds = parse_duration(timeout)
    follower, board = _start(
        sess,
        namespace=namespace,
        all_namespaces=all_namespaces,
        state=state.value if state is not None else None,
        operator=operator,
        target=target,
        search=search,
        include_archived=include_archived,
        limit=limit,
        selector=selector,
        field_selector=field_selector,
    )
    deadline = None if seconds is None else time.monotonic() + seconds
    if until_done and board.empty():
        ns = follower.namespace
        where = "in any namespace" if ns is None else f'in namespace "{ns}"'
        sess.err.print(f"No operations found {where}: nothing to wait for.", markup=False, soft_wrap=True)
        return
    # Ctrl-C propagates: the command wrapper reports it with exit code 130.
    if sess.out.is_terminal:
        _live(sess, follower, board, deadline, until_done)
    else:
        _lines(sess, follower, board, deadline, until_done)


def _start(
    sess: Session,
    *,
    namespace: str | None,
    all_namespaces: bool,
    state: str | None,
    operator: str | None,
    target: str | None,
    search: str | None,
    include_archived: bool,
    limit: int | None,
    selector: str | None,
    field_selector: str | None,
) -> tuple[Follower, Board]:
    """List what matches (the service's filters and the user's kubectl selectors) and prepare to follow it."""
    q = query.list_query(
        operator=operator,
        run_state=state,
        delegation_target=target,
        search={search: ["operator", "label"]} if search else None,
        include_archived=include_archived,
    )
    ns = None if all_namespaces else sess.resolve_namespace(namespace)
    follower = Follower(
        sess.repo(),
        ns,
        label_selector=join_selectors(q.label_selector, selector),
        field_selector=join_selectors(q.field_selector, field_selector),
    )
    board = Board(q, all_namespaces, limit)
    board.replace(follower.list())
    return follower, board


def watch_lines(sess: Session, **filters: Any) -> None:
    """`list -w` / `get -w`: the table once, then one line per change until Ctrl-C (kubectl `get -w`)."""
    follower, board = _start(sess, **filters)
    _lines(sess, follower, board, None, False)


def _live(sess: Session, follower: Follower, board: Board, deadline: float | None, until_done: bool) -> None:
    with Live(board, console=sess.out, refresh_per_second=4, transient=False):
        if until_done and board.all_done():
            return
        for change in follower.changes(deadline):
            if change.type == "SYNC":
                board.replace(change.objects or [])
            elif change.obj is not None:
                board.apply(change.type, change.obj)
            if until_done and board.all_done():
                return


def _lines(sess: Session, follower: Follower, board: Board, deadline: float | None, until_done: bool) -> None:
    moment = now()
    header = render.columns(board.namespaces)
    rows = [render.row(d, moment, board.namespaces) for d in board.sorted()]
    sess.out.print(render.plain_table(rows, header), markup=False, soft_wrap=True)
    if until_done and board.all_done():
        return
    for change in follower.changes(deadline):
        if change.type == "SYNC":
            board.replace(change.objects or [])
            for doc in board.sorted():
                sess.out.print(render.watch_line(doc, now(), board.namespaces), markup=False, soft_wrap=True)
        elif change.obj is not None:
            changed = board.apply(change.type, change.obj)
            if changed is not None:
                line = render.watch_line(changed, now(), board.namespaces, deleted=change.type == "DELETED")
                sess.out.print(line, markup=False, soft_wrap=True)
        if until_done and board.all_done():
            return


def register(app: typer.Typer) -> None:
    add(app, watch)
