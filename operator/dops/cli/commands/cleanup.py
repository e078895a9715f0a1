"""`dops cleanup`: delete many operations by filter (FiftyOne's `fiftyone delegated cleanup`).

Never deletes running (or scheduled) operations: each delete carries the resourceVersion that was
checked, so an operation that starts meanwhile is skipped rather than deleted. Pinned operations are
kept unless `--include-pinned` asks for them: pinning is how a user says "keep this", and a filter
that happens to match it is not a request to drop it. It deletes in bulk, so it asks first on a
terminal and needs `--yes` elsewhere (`dops.cli.confirm`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from ...api.types import DelegatedOperationDocument, ExecutionRunState
from ...k8s import Conflict, NotFound
from ...service import DelegatedOperationService
from .. import render
from ..command import register as add
from ..confirm import YesOption, confirm, require_consent
from ..errors import EXIT_USAGE, CliError
from ..ops import list_operations, now
from ..options import NamespaceOption, State, parse_duration
from ..session import session

ACTIVE = (ExecutionRunState.RUNNING, ExecutionRunState.SCHEDULED)


def _reference_time(doc: DelegatedOperationDocument) -> dt.datetime | None:
    return render.finished_at(doc) or doc.queued_at


def cleanup(
    operator: Annotated[str | None, typer.Option("--operator", help="Only this operator URI.")] = None,
    dataset: Annotated[str | None, typer.Option("-d", "--dataset", help="Only this dataset (name).")] = None,
    state: Annotated[
        State | None,
        typer.Option("-s", "--state", case_sensitive=False, help="Only this state (queued, completed or failed)."),
    ] = None,
    target: Annotated[str | None, typer.Option("-t", "--target", help="Only this delegation target.")] = None,
    orphan: Annotated[
        bool,
        typer.Option(
            "--orphan",
            help="Only operations without a dataset (FiftyOne deletes operations whose dataset does not exist; "
            "dops has no dataset registry, so this means: no dataset id).",
        ),
    ] = False,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", help="Only operations finished (or queued, if unfinished) longer ago than this, e.g. 7d."
        ),
    ] = None,
    include_archived: Annotated[
        bool, typer.Option("-a", "--include-archived", help="Archived operations too.")
    ] = False,
    include_pinned: Annotated[
        bool, typer.Option("--include-pinned", help="Pinned operations too (kept otherwise).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be deleted.")] = False,
    yes: YesOption = False,
    namespace: NamespaceOption = None,
) -> None:
    """Delete the operations that match every given filter; at least one filter is required.

    Running and scheduled operations are never deleted (use dops fail first); pinned ones only with
    --include-pinned. Asks for confirmation on a terminal; elsewhere --yes is required.
    """
    sess = session()
    min_age = parse_duration(older_than)
    if not any((operator, dataset, state, target, orphan, older_than)):
        raise CliError(
            "no cleanup options specified: give --operator, --dataset, --state, --target, --orphan or --older-than",
            EXIT_USAGE,
        )
    if state is not None and state.value in ACTIVE:
        raise CliError(f"cleanup never deletes {state.value} operations (fail them first with dops fail)", EXIT_USAGE)
    if not dry_run:
        require_consent(yes, "cleanup deletes every operation that matches")
    docs = list_operations(
        sess,
        namespace=namespace,
        state=state.value if state is not None else None,
        operator=operator,
        target=target,
        dataset=dataset,
        include_archived=include_archived,
    )
    moment = now()
    chosen: list[DelegatedOperationDocument] = []
    skipped = pinned = 0
    for doc in docs:
        if orphan and doc.dataset_id:
            continue
        if min_age is not None:
            when = _reference_time(doc)
            if when is None or (moment - when).total_seconds() < min_age:
                continue
        if doc.run_state in ACTIVE:
            skipped += 1
            continue
        if doc.pinned and not include_pinned:
            pinned += 1
            continue
        chosen.append(doc)
    if dry_run or (chosen and not yes):
        # What would go: the whole answer of --dry-run, and what the confirmation question is about.
        for doc in chosen:
            sess.out.print(f"would delete {doc.id} ({render.state_name(doc)})", markup=False, soft_wrap=True)
    if dry_run:
        sess.out.print(
            f"{len(chosen)} operations would be deleted{_notes(skipped, pinned)}", markup=False, soft_wrap=True
        )
        return
    if chosen:
        confirm(f"Delete these {len(chosen)} operations?", yes)
    svc = sess.service(namespace)
    deleted = 0
    for doc in chosen:
        outcome = _delete_unless_started(svc, doc, include_pinned)
        if outcome == "deleted":
            deleted += 1
            sess.out.print(f"operation {doc.id} deleted", markup=False, soft_wrap=True)
        elif outcome == "pinned":
            pinned += 1
        else:
            skipped += 1
    sess.out.print(f"{deleted} operations deleted{_notes(skipped, pinned)}", markup=False, soft_wrap=True)


def _notes(skipped: int, pinned: int) -> str:
    notes = [f"{skipped} running or scheduled skipped"] if skipped else []
    if pinned:
        notes.append(f"{pinned} pinned kept: --include-pinned deletes them")
    return f" ({'; '.join(notes)})" if notes else ""


def _delete_unless_started(
    svc: DelegatedOperationService, doc: DelegatedOperationDocument, include_pinned: bool
) -> str:
    """Delete `doc` only as it was checked; if it changed meanwhile, check again (once).

    Returns "deleted", "pinned" (pinned meanwhile, kept) or "skipped" (started, or gone already).
    """
    namespace = doc.namespace or svc.namespace
    assert doc.id is not None
    for _ in range(2):
        if doc.run_state in ACTIVE:
            return "skipped"
        if doc.pinned and not include_pinned:
            return "pinned"
        try:
            svc.repo.delete(namespace, doc.id, resource_version=doc.resource_version)
            return "deleted"
        except NotFound:
            return "skipped"  # somebody else deleted it
        except Conflict:
            try:
                doc = DelegatedOperationDocument.from_resource(svc.repo.get(namespace, doc.id))
            except NotFound:
                return "skipped"
    return "skipped"


def register(app: typer.Typer) -> None:
    add(app, cleanup)
