"""What several commands share: resolving an operation reference, listing with CLI filters, events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from ..api import constants as c
from ..api.times import parse_time, utcnow
from ..api.types import DelegatedOperationDocument, OperationNotFound, SortDirection
from ..domain import query
from ..k8s import ApiError, ApiUnavailable, ConfigurationError, Forbidden, NotFound, ResourceClient
from ..service import DelegatedOperationService
from .command import print_error
from .errors import CliError, crds_missing, describe, not_found
from .options import parse_ref
from .render import event_time
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
        if not crds_installed(sess):
            raise crds_missing(sess.server) from None
        raise not_found(name, svc.namespace) from None


def crds_installed(sess: Session) -> bool:
    """Whether the API serves DelegatedOperations (asked only after a 404, to tell "no such operation" from
    "no such resource type": both are a plain 404 on a GET by name)."""
    try:
        found = sess.client().request("GET", f"/apis/{c.GROUP}/{c.VERSION}")
    except NotFound:
        return False
    except ApiError:
        return True  # cannot tell: keep the plainer "not found"
    resources = (found or {}).get("resources") if isinstance(found, dict) else None
    return resources is None or any(r.get("name") == c.PLURAL for r in resources)


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
    selector: str | None = None,
    field_selector: str | None = None,
) -> list[DelegatedOperationDocument]:
    """FiftyOne's `list_operations` with the CLI's options (`limit` None = unlimited, as its CLI does).

    kubectl's `-l` and `--field-selector` go to the API server with the service's own selectors."""
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
    if not all_namespaces and not selector and not field_selector:
        return sess.service(namespace).list_operations(paging=paging, **filters)
    # Every namespace, or the user's own selectors: the service's filter and order rules over a list.
    q = query.list_query(**filters)
    page = query.normalize_paging(paging)
    repo = sess.repo()
    ns = None if all_namespaces else sess.resolve_namespace(namespace)
    labels = join_selectors(q.label_selector, selector)
    fields = join_selectors(q.field_selector, field_selector)
    objs = [o for o in repo.iterate(ns, label_selector=labels, field_selector=fields) if q.matches(o)]
    objs.sort(key=lambda o: ((o.get("metadata") or {}).get("namespace", ""), (o.get("metadata") or {}).get("name", "")))
    docs = [DelegatedOperationDocument.from_resource(o) for o in objs]
    docs = query.sort_documents(docs, page.sort_by, page.descending, lambda d, f: getattr(d, f, None))
    return query.window(docs, page)


def join_selectors(*parts: str | None) -> str:
    """Selectors ANDed, as the API server reads a comma-separated list."""
    return ",".join(p.strip() for p in parts if p and p.strip())


def events_for(sess: Session, doc: DelegatedOperationDocument) -> list[Mapping[str, Any]] | None:
    """Events about the operation, its Job and its pod (None when the caller may not list events).

    Names are reused (an operation deleted and applied again keeps its name, its Jobs' and so its pods'
    name prefixes), so events are matched by the involved object's UID: the operation's own, and those of
    its Job (owned by that UID) and pod (controlled by that Job). When the Job or pod no longer exists,
    its events are kept only from the operation's creation on."""
    namespace = doc.namespace or sess.resolve_namespace(None)
    meta = (doc.resource or {}).get("metadata") or {}
    op_uid = str(meta.get("uid") or "")
    created = parse_time(meta.get("creationTimestamp"))
    client = sess.events()
    try:
        job_uid = _owned_uid(ResourceClient(sess.client(), "batch", "v1", "jobs"), namespace, doc.job_name, op_uid)
        pod_uid = _owned_uid(sess.pods(), namespace, doc.pod_name, job_uid) if job_uid else None
        involved = [(c.KIND, doc.id, op_uid or None), ("Job", doc.job_name, job_uid), ("Pod", doc.pod_name, pod_uid)]
        events: list[Mapping[str, Any]] = []
        for kind, name, uid in involved:
            if not name:
                continue
            selector = f"involvedObject.name={query.escape_field_value(name)},involvedObject.kind={kind}"
            found = client.list(namespace, field_selector=selector).items
            events.extend(e for e in found if _about(e, uid, created))
    except (Forbidden, NotFound):
        return None
    return events


def job_pods(sess: Session, doc: DelegatedOperationDocument) -> list[JSON]:
    """The pods of the operation's current Job while it is scheduled or running (none when not readable).

    Before the worker starts it cannot record its pod's name, so a pod stuck in ErrImagePull shows
    nowhere on the operation: it is found here through the Job's `batch.kubernetes.io/job-name` label."""
    if not doc.job_name or doc.run_state is None or doc.run_state.is_terminal():
        return []
    namespace = doc.namespace or sess.resolve_namespace(None)
    selector = f"batch.kubernetes.io/job-name={doc.job_name}"
    try:
        return list(sess.pods().list(namespace, label_selector=selector).items)
    except (Forbidden, NotFound):
        return []


def pod_events(sess: Session, namespace: str, pods: list[JSON]) -> list[Mapping[str, Any]]:
    """The events of `pods` (the Job's pods the operation does not name yet)."""
    events: list[Mapping[str, Any]] = []
    try:
        for pod in pods:
            meta = pod.get("metadata") or {}
            name, uid = str(meta.get("name") or ""), meta.get("uid")
            selector = f"involvedObject.name={query.escape_field_value(name)},involvedObject.kind=Pod"
            found = sess.events().list(namespace, field_selector=selector).items
            events.extend(e for e in found if not uid or (e.get("involvedObject") or {}).get("uid") in (None, uid))
    except (Forbidden, NotFound):
        pass
    return events


def _owned_uid(client: ResourceClient, namespace: str, name: str | None, owner_uid: str) -> str | None:
    """The UID of object `name` if it exists and `owner_uid` owns it (else None: gone, or another's)."""
    if not name or not owner_uid:
        return None
    try:
        obj = client.get(namespace, name)
    except ApiError:  # gone, not readable by this user, or unanswered: fall back to the operation's creation time
        return None
    meta = obj.get("metadata") or {}
    owners = {str(r.get("uid")) for r in meta.get("ownerReferences") or []}
    return str(meta.get("uid")) if owner_uid in owners else None


def _about(event: Mapping[str, Any], uid: str | None, since: dt.datetime | None) -> bool:
    """Whether an event (already matched by kind and name) is about the object with `uid` (None: unknown,
    gone; then only events from `since` on). An event naming no UID at all is kept."""
    event_uid = (event.get("involvedObject") or {}).get("uid")
    if uid is not None:
        return not event_uid or event_uid == uid
    if since is None:
        return True
    when = event_time(event)
    return when is None or when >= since


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
