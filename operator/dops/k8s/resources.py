"""Dict-based repositories for dops' custom resources (create, get, list, patch, delete) over `KubeClient`.

`ResourceClient` speaks the REST conventions of one resource type (paths, list paging with
`limit`/`continue`, server-side Table listing, merge and JSON patches on the object or its `/status`,
delete with propagation/preconditions, delete-collection). `DelegatedOperationRepository` and
`DelegationTargetRepository` bind it to the dops CRDs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..api import constants as c
from .client import JSON_PATCH, MERGE_PATCH, TABLE_ACCEPT, KubeClient

JSON = dict[str, Any]


@dataclass
class ListPage:
    """One page of a list: items, the list's resourceVersion, and the continue token (None on the last page).

    `remaining` is `metadata.remainingItemCount`: Kubernetes reports it only for lists without selectors.
    """

    items: list[JSON]
    resource_version: str
    continue_token: str | None
    remaining: int | None


@dataclass
class TablePage:
    columns: list[JSON]
    rows: list[JSON]
    continue_token: str | None


class ResourceClient:
    """REST access to one namespaced or cluster-scoped resource type, with dict bodies."""

    def __init__(self, client: KubeClient, group: str, version: str, plural: str, namespaced: bool = True) -> None:
        self.client = client
        self.group = group
        self.version = version
        self.plural = plural
        self.namespaced = namespaced
        self._prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"

    @property
    def default_namespace(self) -> str:
        return self.client.namespace

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        parts = [self._prefix]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        return "/".join(parts)

    # ------------------------------------------------------------------------------------ reads
    def get(self, namespace: str | None, name: str) -> JSON:
        result: JSON = self.client.request("GET", self.path(namespace, name))
        return result

    def list(
        self,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListPage:
        params = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": str(limit) if limit else None,
            "continue": continue_token,
        }
        body = self.client.request("GET", self.path(namespace), params=params)
        meta = body.get("metadata") or {}
        remaining = meta.get("remainingItemCount")
        return ListPage(
            items=list(body.get("items") or []),
            resource_version=str(meta.get("resourceVersion") or ""),
            continue_token=meta.get("continue") or None,
            remaining=int(remaining) if remaining is not None else None,
        )

    def iterate(
        self, namespace: str | None, *, label_selector: str = "", field_selector: str = "", page_size: int = 500
    ) -> Iterator[JSON]:
        """Every matching object, fetched page by page (stop iterating to stop fetching)."""
        token: str | None = None
        while True:
            page = self.list(
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=page_size,
                continue_token=token,
            )
            yield from page.items
            token = page.continue_token
            if not token:
                return

    def list_table(
        self,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int | None = None,
        continue_token: str | None = None,
        include_object: str = "None",
    ) -> TablePage:
        """A server-side Table (printer-column cells only when include_object="None": the cheapest listing)."""
        params = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": str(limit) if limit else None,
            "continue": continue_token,
            "includeObject": include_object,
        }
        body = self.client.request("GET", self.path(namespace), params=params, accept=TABLE_ACCEPT)
        if body.get("kind") != "Table":  # a server that cannot print tables answers with the plain list
            items = body.get("items") or []
            return TablePage(
                [], [{"cells": [], "object": i} for i in items], (body.get("metadata") or {}).get("continue")
            )
        return TablePage(
            columns=list(body.get("columnDefinitions") or []),
            rows=list(body.get("rows") or []),
            continue_token=(body.get("metadata") or {}).get("continue") or None,
        )

    def count(
        self, namespace: str | None, *, label_selector: str = "", field_selector: str = "", page_size: int = 5000
    ) -> int:
        """How many objects match: `remainingItemCount` when there is no selector, else the rows of server-side
        Tables without objects (`includeObject=None`: a few short cells per row).

        Not metadata-only lists (`as=PartialObjectMetadataList`): a DelegatedOperation's metadata is most of the
        object (managedFields), so counting 10,000 of them that way moves ~10 MB and takes several times longer
        than Table rows (measured with scripts/bench_service.py). Rows are dropped while each page is decoded
        (only their number is kept), so a count leaves nothing behind for the garbage collector.
        """
        if not label_selector and not field_selector:
            page = self.list(namespace, limit=1)
            if page.continue_token is None:
                return len(page.items)
            if page.remaining is not None:
                return len(page.items) + page.remaining
        total = 0
        token: str | None = None
        while True:
            params = {
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "limit": str(page_size) if page_size else None,
                "continue": token,
                "includeObject": "None",
            }
            body = self.client.request(
                "GET", self.path(namespace), params=params, accept=TABLE_ACCEPT, object_pairs_hook=_drop_rows
            )
            # A server that cannot print tables answers with the plain list.
            total += len(body.get("rows" if body.get("kind") == "Table" else "items") or [])
            token = (body.get("metadata") or {}).get("continue") or None
            if not token:
                return total

    # ------------------------------------------------------------------------------------ writes
    def create(self, namespace: str | None, body: Mapping[str, Any], *, field_manager: str = "dops") -> JSON:
        result: JSON = self.client.request(
            "POST", self.path(namespace), params={"fieldManager": field_manager}, body=dict(body)
        )
        return result

    def patch(
        self,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        json_patch: bool = False,
        subresource: str | None = None,
        field_manager: str = "dops",
    ) -> JSON:
        """A JSON merge patch (default) or a JSON Patch (`json_patch=True`) of the object or a subresource."""
        result: JSON = self.client.request(
            "PATCH",
            self.path(namespace, name, subresource),
            params={"fieldManager": field_manager},
            body=patch,
            content_type=JSON_PATCH if json_patch else MERGE_PATCH,
        )
        return result

    def patch_status(self, namespace: str | None, name: str, patch: Any, *, json_patch: bool = False) -> JSON:
        return self.patch(namespace, name, patch, json_patch=json_patch, subresource="status")

    def delete(
        self,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None = "Background",
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> JSON:
        """Delete; returns what the server returns: the terminating object while finalizers hold it, else (for
        custom resources, as kube-apiserver answers) a `Status` whose `details` name what was deleted."""
        body: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        result: JSON = self.client.request("DELETE", self.path(namespace, name), body=body)
        return result

    def delete_collection(
        self,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        propagation_policy: str | None = "Background",
    ) -> JSON:
        body: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        result: JSON = self.client.request(
            "DELETE",
            self.path(namespace),
            params={"labelSelector": label_selector, "fieldSelector": field_selector},
            body=body,
        )
        return result


def _drop_rows(pairs: list[tuple[str, Any]]) -> Any:
    """`json.loads` object_pairs_hook: each Table row (the objects with `cells`) decodes to None."""
    for key, _ in pairs:
        if key == "cells":
            return None
    return dict(pairs)


class DelegatedOperationRepository(ResourceClient):
    """`delegatedoperations.dops.io` resources."""

    def __init__(self, client: KubeClient | None = None) -> None:
        super().__init__(client or KubeClient(), c.GROUP, c.VERSION, c.PLURAL)


class DelegationTargetRepository(ResourceClient):
    """`delegationtargets.dops.io` resources."""

    def __init__(self, client: KubeClient | None = None) -> None:
        super().__init__(client or KubeClient(), c.GROUP, c.VERSION, c.TARGET_PLURAL)
