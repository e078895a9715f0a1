"""What several commands share: resolving an operation reference, listing with CLI filters, events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from ..api import constants as c
from ..api.times import utcnow
from ..api.types import DelegatedOperationDocument, OperationNotFound, SortDirection
from ..domain import query
from ..k8s import ApiUnavailable, ConfigurationError, Forbidden, NotFound
from ..service import DelegatedOperationService
from .command import print_error
from .errors import CliError, describe, not_found
from .options import parse_ref
from .session import Session

JSON = dict[str, Any]

# `--sort-by` spellings → document attributes (FiftyOne's sort fields, plus short forms).
SORT_ALIASES = {
    "queued": "queued_at",
    "scheduled": "scheduled_at",
    "started": "started_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "updated": "updated_at",
    "state": "run_state",
    "name": "id",
    "target": "delegation_target",
    "dataset": "dataset_id",
}


def now() -> dt.datetime:
    return utcnow()


def resolve(sess: Session, ref: str, namespace: str | None) -> tuple[DelegatedOperationService, str]:
    """The service for the operation's namespace and the operation's name."""
    ns, name = parse_ref(ref, sess.resolve_namespace(namespace))
    return sess.service(ns), name


def get_operation(
    sess: Session, ref: str, namespace: str | None
) -> tuple[DelegatedOperationService, DelegatedOperationDocument]:
    svc, name = resolve(sess, ref, namespace)
    try:
        return svc, svc.get(name)
    except OperationNotFound:
        raise not_found(name, svc.namespace) from None


def sort_field(text: str) -> str:
    key = text.strip().lower().replace("-", "_")
    return SORT_ALIASES.get(key, key)


def list_operations(
    sess: Session,
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    state: str | None = None,
    operator: str | None = None,
    target: str | None = None,
    dataset: str | None = None,
    dataset_id: str | None = None,
    search: str | None = None,
    sort_by: str = "queued_at",
    reverse: bool = False,
    limit: int | None = None,
    include_archived: bool = False,
    pinned: bool | None = None,
) -> list[DelegatedOperationDocument]:
    """FiftyOne's `list_operations` with the CLI's options (`limit` None = unlimited, as its CLI does)."""
    filters: dict[str, Any] = {
        "operator": operator,
        "dataset_name": dataset,
        "dataset_id": dataset_id,
        "run_state": state,
        "delegation_target": target,
        "search": {search: ["operator", "label"]} if search else None,
        "include_archived": include_archived,
    }
    if pinned is not None:
        filters["pinned"] = pinned
    paging = {
        "sort_by": sort_field(sort_by),
        "sort_direction": SortDirection.ASCENDING if reverse else SortDirection.DESCENDING,
        "skip": 0,
        "limit": limit or None,
    }
    if not all_namespaces:
        return sess.service(namespace).list_operations(paging=paging, **filters)
    # Every namespace: the service's own filter and order rules over a cluster-wide list.
    q = query.list_query(**filters)
    page = query.normalize_paging(paging)
    repo = sess.repo()
    objs = [
        o for o in repo.iterate(None, label_selector=q.label_selector, field_selector=q.field_selector) if q.matches(o)
    ]
    objs.sort(key=lambda o: ((o.get("metadata") or {}).get("namespace", ""), (o.get("metadata") or {}).get("name", "")))
    docs = [DelegatedOperationDocument.from_resource(o) for o in objs]
    docs = query.sort_documents(docs, page.sort_by, page.descending, lambda d, f: getattr(d, f, None))
    return query.window(docs, page)


def events_for(sess: Session, doc: DelegatedOperationDocument) -> list[Mapping[str, Any]] | None:
    """Events about the operation, its Job and its pod (None when the caller may not list events)."""
    namespace = doc.namespace or sess.resolve_namespace(None)
    involved = [(c.KIND, doc.id), ("Job", doc.job_name), ("Pod", doc.pod_name)]
    events: list[Mapping[str, Any]] = []
    client = sess.events()
    try:
        for kind, name in involved:
            if not name:
                continue
            selector = f"involvedObject.name={query.escape_field_value(name)},involvedObject.kind={kind}"
            events.extend(client.list(namespace, field_selector=selector).items)
    except (Forbidden, NotFound):
        return None
    return events


def for_each(
    sess: Session,
    refs: list[str],
    namespace: str | None,
    action: Callable[[DelegatedOperationService, DelegatedOperationDocument], str],
) -> int:
    """Apply `action` to each operation; print its message, or one error line per operation that fails.

    Returns the exit code: 0 when every action succeeded, else the highest error code (3 beats 1).
    """
    worst = 0
    for ref in refs:
        try:
            svc, doc = get_operation(sess, ref, namespace)
            message = action(svc, doc)
        except CliError as exc:
            print_error(exc.message)
            worst = max(worst, exc.code)
            continue
        except (ApiUnavailable, ConfigurationError):
            raise  # the cluster is gone: no point in trying the others
        except Exception as exc:
            message_, code = describe(exc, sess.server)
            print_error(message_)
            worst = max(worst, code)
            continue
        if message:
            sess.out.print(message, markup=False, soft_wrap=True)
    return worst
