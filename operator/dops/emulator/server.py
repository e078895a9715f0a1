"""The HTTP face of the embedded API server: routing, body decoding, discovery, OpenAPI, Tables, watch streams.

Transport rules come from what the real clients do (API-surface spec §1): plain HTTP on loopback,
`Content-Type: application/json` exactly (no charset: pykube compares the string), missing request
Content-Type read as JSON, protobuf request bodies for the kinds helm and kubectl send that way,
chunked watch streams flushed per event with headers sent before the first event, and errors as
`Status` objects. Semantics live in `apiserver.ApiServer`; this module only translates.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import errors, gojson, negotiation, openapi, tables
from .apiserver import (
    PATCH_APPLY,
    PATCH_APPLY_CBOR,
    PATCH_JSON,
    PATCH_MERGE,
    PATCH_STRATEGIC,
    ApiServer,
    DeleteOptions,
    WriteOptions,
)
from .clock import Clock
from .controllers import build as build_controller
from .controllers.base import Controller
from .faults import Faults
from .protobuf import ProtobufError, decode_object
from .registry import ResourceType
from .store import Event, HistoryExpired, Watcher, dumps

log = logging.getLogger("dops.emulator")

JSON = dict[str, Any]
JSON_TYPE = "application/json"
MAX_REQUEST_BYTES = 3 * 1024 * 1024
KUBE_VERSION = {
    "major": "1",
    "minor": "35",
    "emulationMajor": "1",
    "emulationMinor": "35",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "34",
    "gitVersion": "v1.35.0",
    "gitCommit": "dops-emulator",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_PATCH_TYPES = (PATCH_JSON, PATCH_MERGE, PATCH_STRATEGIC, PATCH_APPLY, PATCH_APPLY_CBOR)

LogHandler = Callable[[web.Request, JSON, dict[str, str]], Awaitable[web.StreamResponse]]


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 0
    bookmark_interval: float = 30.0  # seconds between BOOKMARKs on watches that allow them (kopf drops at 70 s)
    default_watch_timeout: float = 1800.0  # watches without timeoutSeconds close after this
    history_size: int = 20_000
    # Controllers to run (see controllers/__init__.py); () = API server only.
    controllers: tuple[str, ...] = ()
    # Per-controller keyword options, e.g. {"kubelet": {"image_map": {...}}, "job": {"backoff_base": 0.1}}.
    controller_options: dict[str, dict[str, Any]] = field(default_factory=dict)


def json_response(
    body: Any, status: int = 200, warnings: list[str] | None = None, *, encoded: bytes | None = None
) -> web.Response:
    """`body` as JSON; `encoded` is its encoding when the caller has it already (see `Store.encoded`)."""
    payload = dumps(body) if encoded is None else encoded
    response = web.Response(body=payload, status=status, headers={"Content-Type": JSON_TYPE})
    for warning in warnings or ():
        response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
    return response


def error_response(error: errors.APIError) -> web.Response:
    response = json_response(error.status(), status=error.code)
    retry_after = (error.details or {}).get("retryAfterSeconds")
    if retry_after:  # as the apiserver does; client-go retries 429/5xx only when it sees this header
        response.headers["Retry-After"] = str(retry_after)
    return response


# Non-resource paths the server has handlers for (any other path is the mux's plain 404).
_META_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz", "/api", "/apis", "/openapi/v2", "/openapi/v3"})


def page_not_found() -> web.Response:
    """What the apiserver's mux answers for a path no handler serves (an unknown API group, `/foo`): Go's
    `http.NotFound`, plain text, not a Status."""
    headers = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}
    return web.Response(status=404, body=b"404 page not found\n", headers=headers)


@dataclass
class AccessRecord:
    """One request as the server received it (see `HTTPServer.access_log`)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    user_agent: str
    status: int = 0  # filled in once the handler returns (200 for watch streams)


@dataclass
class Route:
    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


class HTTPServer:
    """aiohttp application around an ApiServer."""

    def __init__(self, api: ApiServer, settings: ServerSettings, faults: Faults) -> None:
        self.api = api
        self.settings = settings
        self.faults = faults
        self.log_handler: LogHandler | None = None
        # Tests set this to a list to record every request (method, path, query, Content-Type, status).
        self.access_log: list[AccessRecord] | None = None
        self._openapi_cache: dict[str, tuple[int, JSON, str]] = {}
        self._openapi_registry_version = 0
        self._active_streams: set[web.StreamResponse] = set()
        self.app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)

    # ------------------------------------------------------------------------------- entry point
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.access_log is None:
            return await self._dispatch(request)
        record = AccessRecord(
            request.method,
            request.path,
            dict(request.query),
            request.headers.get("Content-Type", ""),
            request.headers.get("User-Agent", ""),
        )
        self.access_log.append(record)
        response = await self._dispatch(request)
        record.status = response.status
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        try:
            if path.startswith("/__emulator/"):
                return await self._admin(request)
            fault = self.faults.check(request.method, path) if self.faults.rules else None
            if fault is not None:
                return error_response(fault)
            if path.startswith("/api/") or path.startswith("/apis/"):
                return await self._resource(request)
            return self._meta(request)
        except errors.APIError as exc:
            return error_response(exc)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug must not take the server down; the client gets a 500 Status
            log.exception("internal error serving %s %s", request.method, request.path_qs)
            return error_response(errors.internal(f"{type(exc).__name__}: {exc}"))

    # ------------------------------------------------------------------------------- discovery etc.
    def _meta(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.method != "GET":
            if path not in _META_PATHS and not path.startswith("/openapi/v3/"):
                return page_not_found()  # no handler for the path at all, whatever the method
            raise errors.method_not_allowed()
        if path == "/version":
            return json_response(KUBE_VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/api":
            return json_response(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}],
                }
            )
        if path == "/apis":
            return json_response(self._group_list())
        if path == "/openapi/v3":
            # The aggregator serves the index through http.ServeContent without a Content-Type, so Go sniffs one.
            index = dumps(openapi.build_index(self._openapi_documents()))
            return web.Response(body=index, headers={"Content-Type": "text/plain; charset=utf-8"})
        if path.startswith("/openapi/v3/"):
            key = path[len("/openapi/v3/") :]
            docs = self._openapi_documents()
            if key not in docs:
                return web.Response(status=404)  # the OpenAPI handler's bare 404: no body, no Content-Type
            return json_response(docs[key])
        if path == "/openapi/v2":
            # An OpenAPI v2 document without definitions. kubectl falls back to v2 for kinds missing from v3; with an
            # empty document it skips validation and reports `no matches for kind` from discovery, as against a real
            # server. Protobuf (what client-go asks for) of an empty openapi_v2.Document is zero bytes.
            if "protobuf" in request.headers.get("Accept", ""):
                v2_proto = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
                return web.Response(body=b"", headers={"Content-Type": v2_proto})
            return json_response({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.35.0"}, "paths": {}})
        return page_not_found()

    def _group_list(self) -> JSON:
        groups = []
        for group, versions in self.api.registry.groups().items():
            entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> JSON | None:
        types = self.api.registry.in_group_version(group, version)
        if not types:
            return None
        resources: list[JSON] = []
        for rtype in types:
            entry: JSON = {
                "name": rtype.plural,
                "singularName": rtype.singular,
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": list(rtype.verbs),
                "storageVersionHash": "",
            }
            if rtype.short_names:
                entry["shortNames"] = list(rtype.short_names)
            if rtype.categories:
                entry["categories"] = list(rtype.categories)
            resources.append(entry)
            for sub in sorted(rtype.subresources):
                sub_entry: JSON = {
                    "name": f"{rtype.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub == "log":
                    sub_entry["kind"] = "Pod"
                    sub_entry["verbs"] = ["get"]
                elif sub == "scale":
                    sub_entry["kind"] = "Scale"
                    sub_entry["group"] = "autoscaling"
                    sub_entry["version"] = "v1"
                resources.append(sub_entry)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def _openapi_documents(self) -> dict[str, JSON]:
        by_gv: dict[tuple[str, str], list[ResourceType]] = {}
        for rtype in self.api.registry:
            by_gv.setdefault((rtype.group, rtype.version), []).append(rtype)
        docs: dict[str, JSON] = {}
        for (group, version), types in sorted(by_gv.items()):
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            fingerprint = hash(tuple((t, id(t.schema)) for t in sorted(types, key=lambda t: t.plural)))
            cached = self._openapi_cache.get(key)
            if cached is None or cached[0] != fingerprint:
                doc = openapi.build_document(group, version, sorted(types, key=lambda t: t.plural))
                self._openapi_cache[key] = (fingerprint, doc, "")
                cached = self._openapi_cache[key]
            docs[key] = cached[1]
        # The discovery endpoints' own documents, as the real index lists them (built-in groups only).
        builtin_groups = {t.group for t in self.api.registry if t.group and not t.is_custom}
        for key in ("api", "apis", "version", *(f"apis/{group}" for group in builtin_groups)):
            docs[key] = openapi.discovery_document(key)
        return docs

    # ------------------------------------------------------------------------------- resources
    def _route(self, request: web.Request) -> Route | web.Response:
        parts = [p for p in request.path.split("/") if p]
        if parts[0] == "api":
            if len(parts) == 1:
                return self._meta(request)  # type: ignore[return-value]
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return json_response(self._group_list())
            versions = self.api.registry.versions_of(parts[1])
            if not versions:
                return page_not_found()  # no group handler is registered for an unknown group
            if len(parts) == 2:
                entries = [{"groupVersion": f"{parts[1]}/{v}", "version": v} for v in versions]
                return json_response(
                    {
                        "kind": "APIGroup",
                        "apiVersion": "v1",
                        "name": parts[1],
                        "versions": entries,
                        "preferredVersion": entries[0],
                    }
                )
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            if request.method != "GET":
                raise errors.method_not_allowed()
            listing = self._resource_list(group, version)
            if listing is None:
                return self._unresolved(group)
            return json_response(listing)
        if rest[0] == "watch":  # deprecated /watch/ prefix; _resource() forces watch=true for it
            rest = rest[1:]
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace = rest[1]
            rest = rest[2:]
        plural = rest[0]
        rtype = self.api.registry.get(group, version, plural)
        if rtype is None:
            return self._unresolved(group)
        if len(rest) > 3:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource", {})
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if rtype.namespaced and namespace is None and name is not None:
            return self._unresolved(group)
        if not rtype.namespaced and namespace is not None:
            return self._unresolved(group)
        if (
            sub is not None
            and sub not in rtype.subresources
            and not (rtype.plural == "namespaces" and sub == "finalize")
        ):
            if rtype.is_custom:  # the CRD handler's own answer for a subresource it does not serve
                raise errors.not_found(rtype, name or "")
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource", {})
        return Route(rtype, namespace, name, sub)

    def _unresolved(self, group: str) -> web.Response:
        """A path under a served group that names no version, resource or scope it serves. Built-in groups answer
        a NotFound Status; a group served only by CRDs hands the request on (the CRD handler's delegate), which ends
        in Go's plain-text `404 page not found`."""
        if group and all(t.is_custom for t in self.api.registry if t.group == group):
            return page_not_found()
        raise errors.APIError(404, "NotFound", "the server could not find the requested resource", {})

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        route = self._route(request)
        if isinstance(route, web.StreamResponse):
            return route
        query = dict(request.query)
        if "/watch/" in request.path[:60]:
            query["watch"] = "true"
        rtype, namespace, name, sub = route.rtype, route.namespace, route.name, route.subresource
        method = request.method
        api = self.api
        if method == "GET":
            if sub == "log":
                api.count_request("get", "pods/log")
                pod = api.get(rtype, namespace, name or "")
                handler: LogHandler | None = self.log_handler or api.log_provider  # the kubelet's, when it runs
                if handler is None:
                    return self._log_without_kubelet(pod, query)
                return await handler(request, pod, query)
            if name is not None:
                if query.get("watch") in ("true", "1"):
                    query["fieldSelector"] = _and_selector(query.get("fieldSelector", ""), f"metadata.name={name}")
                    return await self._watch(request, rtype, namespace, query)
                api.count_request("get", rtype.plural)
                target = negotiation.negotiate(request.headers.get("Accept", ""))  # 406 comes before 404
                obj = api.get(rtype, namespace, name)
                if target is not None:
                    return self._object_as(rtype, obj, target, query)
                return json_response(obj, encoded=api.store.encoded(obj))
            if query.get("watch") in ("true", "1"):
                return await self._watch(request, rtype, namespace, query)
            api.count_request("list", rtype.plural)
            return self._list(request, rtype, namespace, query)
        if method == "POST":
            if name is not None:
                raise errors.method_not_allowed()
            api.count_request("create", rtype.plural)
            body = await self._body(request, rtype.kind)
            opts = self._write_options(query, request)
            result = api.create(rtype, namespace, body, opts)
            return json_response(result.obj, 201, result.warnings, encoded=api.store.encoded(result.obj))
        if method == "PUT":
            if name is None:
                # Built-ins register no collection PUT route (405); the CRD handler serves it and its namer refuses.
                raise errors.bad_request("name must be provided") if rtype.is_custom else errors.method_not_allowed()
            api.count_request("update", rtype.plural + (f"/{sub}" if sub else ""))
            body = await self._body(request, rtype.kind)
            opts = self._write_options(query, request)
            if sub == "finalize":
                result = api.update(rtype, namespace, name, body, opts)
            else:
                result = api.update(rtype, namespace, name, body, opts, sub)
            return json_response(result.obj, 200, result.warnings, encoded=api.store.encoded(result.obj))
        if method == "PATCH":
            if name is None and not rtype.is_custom:
                raise errors.method_not_allowed()
            api.count_request("patch", rtype.plural + (f"/{sub}" if sub else ""))
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type not in _PATCH_TYPES:
                raise errors.unsupported_media_type(content_type, custom=rtype.is_custom)
            if name is None:  # the CRD handler's PatchResource checks the patch type, then its namer refuses
                raise errors.bad_request("name must be provided")
            raw = await self._read(request)
            patch = _decode_patch(raw, content_type)
            opts = self._write_options(query, request)
            if content_type in (PATCH_APPLY, PATCH_APPLY_CBOR) and not query.get("fieldManager"):
                opts.field_manager = ""  # apply requires an explicit fieldManager (no User-Agent default): 400
            if "force" in query:
                opts.force = query["force"] == "true"
            result = api.patch(rtype, namespace, name, content_type, patch, opts, sub)
            status = 201 if result.created else 200
            return json_response(result.obj, status, result.warnings, encoded=api.store.encoded(result.obj))
        if method == "DELETE":
            raw = await self._read(request)
            body = None
            if raw.strip():
                body = self._decode_body(raw, request.headers.get("Content-Type", ""))
            delete_opts = DeleteOptions.from_body(body, query)
            if name is None:
                api.count_request("deletecollection", rtype.plural)
                return json_response(
                    api.delete_collection(
                        rtype, namespace, delete_opts, query.get("labelSelector", ""), query.get("fieldSelector", "")
                    )
                )
            api.count_request("delete", rtype.plural)
            result_body, _ = api.delete(rtype, namespace, name, delete_opts)
            return json_response(result_body, 200, encoded=api.store.encoded(result_body))
        raise errors.method_not_allowed()

    def _write_options(self, query: dict[str, str], request: web.Request) -> WriteOptions:
        # Validate{Create,Update,Patch}Options: bad values are 422 Invalid on kind <Verb>Options.meta.k8s.io.
        options_kind = {"POST": "CreateOptions", "PUT": "UpdateOptions"}.get(request.method, "PatchOptions")
        validation = query.get("fieldValidation", "Warn") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            supported = ("", "Ignore", "Strict", "Warn")  # ValidateFieldValidation lists the empty default too
            raise _options_invalid(options_kind, errors.unsupported_value("fieldValidation", validation, supported))
        dry_run = query.get("dryRun", "")
        if dry_run and dry_run != "All":
            # field.Error renders the []string bad value with json.Marshal.
            bad_value = json.dumps([dry_run], separators=(",", ":"))
            cause = errors.cause("dryRun", f'dryRun: Unsupported value: {bad_value}: supported values: "All"')
            raise _options_invalid(options_kind, {**cause, "reason": "FieldValueNotSupported"})
        manager = query.get("fieldManager") or _manager_from_user_agent(request.headers.get("User-Agent", ""))
        return WriteOptions(dry_run=dry_run == "All", field_manager=manager, field_validation=validation)

    def _list(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, query: dict[str, str]
    ) -> web.Response:
        try:
            limit = int(query.get("limit") or 0)
        except ValueError as exc:
            raise errors.bad_request(f"invalid limit: {query['limit']}") from exc
        target = negotiation.negotiate(request.headers.get("Accept", ""))
        result = self.api.list_objects(
            rtype,
            namespace,
            query.get("labelSelector", ""),
            query.get("fieldSelector", ""),
            max(limit, 0),
            query.get("continue", ""),
        )
        if target is not None and target.kind == negotiation.TABLE:
            body = self._table_body(rtype, result.items, query, result.resource_version, result.continue_token)
            return web.Response(body=body, headers={"Content-Type": JSON_TYPE})
        if target is not None and target.kind == negotiation.METADATA:
            raise negotiation.not_an_object(rtype)
        meta: JSON = {"resourceVersion": result.resource_version}
        if result.continue_token:
            meta["continue"] = result.continue_token
            if result.remaining is not None:
                meta["remainingItemCount"] = result.remaining
        if target is not None:  # PartialObjectMetadataList: each item's metadata only
            head = dumps({"kind": negotiation.METADATA_LIST, "apiVersion": target.api_version, "metadata": meta})
            prefix = b'{"kind":"PartialObjectMetadata","apiVersion":"' + target.api_version.encode() + b'","metadata":'
            items = b",".join(prefix + dumps(item.get("metadata") or {}) + b"}" for item in result.items)
            # Upstream appends each item to a nil slice: an empty list's items encode as null.
            tail = b',"items":[' + items + b"]}" if result.items else b',"items":null}'
            return web.Response(body=head[:-1] + tail, headers={"Content-Type": JSON_TYPE})
        head = dumps({"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": meta})
        # Splice pre-encoded items into the envelope: lists of thousands of objects are the hot path.
        body = head[:-1] + b',"items":[' + b",".join(dumps(item) for item in result.items) + b"]}"
        return web.Response(body=body, headers={"Content-Type": JSON_TYPE})

    def _object_as(
        self, rtype: ResourceType, obj: JSON, target: negotiation.Transform, query: dict[str, str]
    ) -> web.Response:
        """One object as the negotiated Table or PartialObjectMetadata (406 for PartialObjectMetadataList)."""
        if target.kind == negotiation.TABLE:
            return json_response(self._table(rtype, [obj], query, str(obj["metadata"]["resourceVersion"])))
        if target.kind == negotiation.METADATA_LIST:
            raise negotiation.not_a_list(rtype)
        return json_response(_partial_metadata(obj, target.api_version))

    def _table(self, rtype: ResourceType, items: list[JSON], query: dict[str, str], rv: str, cont: str = "") -> JSON:
        include = query.get("includeObject", "Metadata") or "Metadata"
        if include not in ("None", "Metadata", "Object"):
            raise errors.bad_request(
                f'includeObject: Unsupported value: "{include}": supported values: "Metadata", "None", "Object"'
            )
        return tables.to_table(
            rtype, items, now=self.api.clock.now(), include_object=include, resource_version=rv, continue_token=cont
        )

    def _table_body(self, rtype: ResourceType, items: list[JSON], query: dict[str, str], rv: str, cont: str) -> bytes:
        """`_table`, encoded row by row: each row is dropped once encoded, so listing thousands of objects does not
        hold thousands of row objects alive (which makes the next full GC pass come sooner)."""
        head = dumps(self._table(rtype, [], query, rv, cont))  # validates includeObject
        include = query.get("includeObject", "Metadata") or "Metadata"
        rows = tables.table_rows(rtype, items, now=self.api.clock.now(), include_object=include)
        chunks: list[bytes] = []
        while chunk := list(itertools.islice(rows, 256)):  # one encoder call per 256 rows
            chunks.append(dumps(chunk)[1:-1])
        return head[: -len(b"]}")] + b",".join(chunks) + b"]}"

    # ------------------------------------------------------------------------------- bodies
    async def _read(self, request: web.Request) -> bytes:
        length = request.content_length
        if length is not None and length > MAX_REQUEST_BYTES:
            raise errors.too_large(f"Request entity too large: limit is {MAX_REQUEST_BYTES}")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = await request.content.read(256 * 1024)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_REQUEST_BYTES:
                raise errors.too_large(f"Request entity too large: limit is {MAX_REQUEST_BYTES}")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _body(self, request: web.Request, kind: str | None = None) -> Any:
        raw = await self._read(request)
        return self._decode_body(raw, request.headers.get("Content-Type", ""), kind)

    def _decode_body(self, raw: bytes, content_type: str, kind: str | None = None) -> Any:
        """The request body as JSON. `kind` (creates and updates) words decoding errors as kube-apiserver's
        transformDecodeError does: `the object provided is unrecognized (must be of type <kind>): … (<summary>)`."""
        ctype = content_type.split(";")[0].strip().lower()
        if ctype == "application/vnd.kubernetes.protobuf":
            try:
                return decode_object(raw)
            except ProtobufError as exc:
                if "unsupported" in str(exc):
                    raise errors.APIError(415, "UnsupportedMediaType", str(exc)) from exc
                raise errors.bad_request(str(exc)) from exc
        if ctype in ("", JSON_TYPE, "*/*", "text/plain"):
            if kind is None and not raw.strip():
                return None
            value, problem = _decode_json(raw)
            if problem is None and kind is not None:
                problem = gojson.type_meta_error(value)
            if problem is not None:
                detail = f"couldn't get version/kind; json parse error: {problem}"
                if kind is None:
                    raise errors.bad_request(detail)
                raise errors.bad_request(_unrecognized(kind, detail, raw))
            return value
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                if kind is None:
                    raise errors.bad_request(f"error converting YAML to JSON: {_one_line(str(exc))}") from exc
                raise errors.bad_request(_unrecognized(kind, _go_yaml_error(exc), raw)) from exc
            problem = gojson.type_meta_error(value) if kind is not None else None
            if problem is not None and kind is not None:
                detail = f"couldn't get version/kind; json parse error: {problem}"
                raise errors.bad_request(_unrecognized(kind, detail, raw))
            return value
        raise errors.APIError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"application/json, application/yaml, application/vnd.kubernetes.protobuf; got {ctype}",
        )

    def _log_without_kubelet(self, pod: JSON, query: dict[str, str]) -> web.StreamResponse:
        containers = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
        name = pod["metadata"]["name"]
        container = query.get("container") or ""
        if not container:
            if len(containers) != 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
                )
            container = containers[0]
        if container not in containers:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return web.Response(status=204)  # no node to ask: the apiserver streams nothing (204 No Content)
        nodes = self.api.registry.get("", "v1", "nodes")
        if nodes is not None:
            try:
                self.api.get(nodes, None, node)
            except errors.APIError as exc:
                # The node lookup's NotFound, named after the pods resource the request was for (as upstream answers).
                details = {"name": node, "kind": "pods"}
                raise errors.APIError(404, "NotFound", f'pods "{node}" not found', details) from exc
        raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')

    # ------------------------------------------------------------------------------- watch
    async def _watch(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, query: dict[str, str]
    ) -> web.StreamResponse:
        api = self.api
        api.count_request("watch", rtype.plural)
        rv_text = query.get("resourceVersion", "")
        send_param = query.get("sendInitialEvents")
        match = query.get("resourceVersionMatch", "")
        # SetListOptionsDefaults (WatchList on): a legacy watch (no RV or RV 0, neither option) becomes a watch-list.
        if send_param is None and not match and rv_text in ("", "0"):
            send_param, match = "true", "NotOlderThan"
        _validate_watch_options(send_param, match, query.get("continue", ""))
        send_initial = send_param == "true"
        since: int | None = None
        if rv_text and rv_text != "0" and not send_initial:
            try:
                since = int(rv_text)
            except ValueError as exc:
                raise errors.bad_request(f"invalid resource version: {rv_text}") from exc
        elif send_param == "false":
            since = api.store.rv  # sendInitialEvents=false from no particular RV: only changes from now on
        target = negotiation.negotiate(request.headers.get("Accept", ""))
        as_table = target is not None and target.kind == negotiation.TABLE
        metadata_version = target.api_version if target is not None and target.kind == negotiation.METADATA else None
        # as=PartialObjectMetadataList cannot transform single objects; upstream then tries to encode the object as it
        # is for meta.k8s.io, fails, and ends the stream at the first event without writing it.
        unencodable = target is not None and target.kind == negotiation.METADATA_LIST
        if as_table:
            self._table(rtype, [], query, "")  # validates includeObject before the stream starts
        bookmarks = query.get("allowWatchBookmarks") == "true"
        timeout = self.settings.default_watch_timeout
        if query.get("timeoutSeconds"):
            try:
                timeout = float(query["timeoutSeconds"])
            except ValueError as exc:
                raise errors.bad_request(f"invalid timeoutSeconds: {query['timeoutSeconds']}") from exc
        expired: HistoryExpired | None = None
        watcher: Watcher | None = None
        backlog: list[tuple[str, Event]] = []
        try:
            watcher, backlog = api.watch(
                rtype, namespace, since, query.get("labelSelector", ""), query.get("fieldSelector", "")
            )
        except HistoryExpired as exc:
            expired = exc
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON_TYPE})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self._active_streams.add(response)
        stream = _WatchStream(response, rtype, as_table, self, query, metadata_version, unencodable)
        try:
            if expired is not None or watcher is None:
                await stream.error(errors.expired(str(expired)).status())
                return response
            for kind, event in backlog:
                await stream.event(kind, event)
            if send_initial and bookmarks:  # the initial-events-end bookmark is sent only to watchers that allow them
                await stream.bookmark(str(api.store.rv), initial_end=True)
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + self.settings.bookmark_interval
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(next_bookmark - now, 0.0))
                if not watcher.pending and watcher.error is None and not watcher.closed and not watcher.overflowed:
                    watcher.wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(watcher.wakeup.wait(), wait)
                lag = self.faults.watch_lag(rtype.plural)
                if lag and watcher.pending:
                    await asyncio.sleep(lag)  # injected lag: what arrived meanwhile goes out with it, in order
                while watcher.pending:
                    kind, event = watcher.pending.popleft()
                    await stream.event(kind, event)
                if watcher.error is not None:
                    await stream.error(watcher.error)
                    break
                if watcher.closed or watcher.overflowed:
                    if watcher.closed and request.transport is not None:
                        request.transport.abort()  # a dropped stream, as when an apiserver restarts
                    break
                if bookmarks and time.monotonic() >= next_bookmark:
                    await stream.bookmark(str(api.store.rv))
                    next_bookmark = time.monotonic() + self.settings.bookmark_interval
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write_eof()
        except _UnencodableEvent:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write_eof()
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._active_streams.discard(response)
            if watcher is not None:
                api.store.unwatch(watcher)
        return response

    # ------------------------------------------------------------------------------- admin API
    async def _admin(self, request: web.Request) -> web.StreamResponse:
        path = request.path[len("/__emulator/") :].rstrip("/")
        if path == "faults":
            if request.method == "GET":
                return json_response({"rules": [r.describe() for r in self.faults.rules]})
            if request.method == "DELETE":
                self.faults.clear()
                return json_response({"rules": []})
            if request.method == "POST":
                body = await self._body(request)
                if not isinstance(body, dict) or "code" not in body:
                    raise errors.bad_request('fault rule needs at least "code" (e.g. {"code": 500, "times": 2})')
                try:
                    rule = self.faults.add(
                        int(body["code"]),
                        str(body.get("method", "*")),
                        str(body.get("path", ".*")),
                        int(body.get("times", 1)),
                        str(body.get("message", "")),
                        int(body.get("skip", 0)),
                    )
                except (ValueError, re.error) as exc:
                    raise errors.bad_request(f"invalid fault rule: {exc}") from exc
                return json_response(rule.describe(), 201)
        if path == "watches/expire" and request.method == "POST":
            return json_response({"expired": self.expire_watches()})
        if path == "watches/drop" and request.method == "POST":
            return json_response({"dropped": self.drop_watches()})
        if path == "watches/lag" and request.method == "GET":
            return json_response({"lags": dict(self.faults.watch_lags)})
        if path == "watches/lag" and request.method == "POST":
            body = await self._body(request)
            if not isinstance(body, dict) or "resource" not in body or "seconds" not in body:
                example = '{"resource": "pods", "seconds": 2}'
                raise errors.bad_request(f'a watch lag needs "resource" and "seconds", e.g. {example}')
            try:
                self.faults.lag_watches(str(body["resource"]), float(body["seconds"]))
            except (TypeError, ValueError) as exc:
                raise errors.bad_request(f"invalid watch lag: {exc}") from exc
            return json_response({"lags": dict(self.faults.watch_lags)})
        if path == "stats" and request.method == "GET":
            return json_response(self.stats())
        raise errors.APIError(404, "NotFound", f"unknown emulator admin endpoint: {request.method} {request.path}")

    def expire_watches(self) -> int:
        """Every open watch receives ERROR 410 Expired; history is compacted so resumes also get 410."""
        store = self.api.store
        watchers = store.all_watchers()
        store.compact()
        for watcher in watchers:
            watcher.fail(errors.expired(f"too old resource version: {store.rv - 1} ({store.rv})").status())
        return len(watchers)

    def drop_watches(self) -> int:
        watchers = self.api.store.all_watchers()
        for watcher in watchers:
            watcher.close()
        return len(watchers)

    def stats(self) -> JSON:
        requests: dict[str, dict[str, int]] = {}
        for (verb, resource), count in sorted(self.api.request_counts.items()):
            requests.setdefault(resource, {})[verb] = count
        return {
            "resourceVersion": self.api.store.rv,
            "requests": requests,
            "objects": {f"{g}/{p}".lstrip("/"): self.api.store.count((g, p)) for g, p in self.api.store.resources()},
            "watches": len(self.api.store.all_watchers()),
        }


class _UnencodableEvent(Exception):
    """A watch event the negotiated form cannot carry (as=PartialObjectMetadataList): the stream ends there."""


class _WatchStream:
    """Writes watch events as newline-delimited JSON, one flush per event."""

    def __init__(
        self,
        response: web.StreamResponse,
        rtype: ResourceType,
        as_table: bool,
        server: HTTPServer,
        query: dict[str, str],
        metadata_version: str | None = None,
        unencodable: bool = False,
    ) -> None:
        self.response = response
        self.unencodable = unencodable  # as=PartialObjectMetadataList: no event can be written
        self.rtype = rtype
        self.as_table = as_table
        self.server = server
        self.query = query
        self.metadata_version = metadata_version  # "meta.k8s.io/v1": events carry PartialObjectMetadata
        self.first = True

    async def event(self, kind: str, event: Event) -> None:
        if self.unencodable:
            raise _UnencodableEvent
        if kind == "DELETED" and event.type != "DELETED" and event.old is not None:
            # Left the selector: the watch cache sends the previous content stamped with this write's RV.
            old = event.old
            left = {**old, "metadata": {**old["metadata"], "resourceVersion": str(event.rv)}}
            event = Event(event.rv, kind, event.resource, left, None)
        if self.as_table:
            obj = self.server.api.present(self.rtype, event.obj)
            table = self.server._table(self.rtype, [obj], self.query, str(event.rv))
            if not self.first:
                table["columnDefinitions"] = []
            self.first = False
            encoded = dumps(table)
        elif self.metadata_version is not None:
            encoded = dumps(_partial_metadata(event.obj, self.metadata_version))
        elif event.obj.get("apiVersion") != self.rtype.api_version:
            encoded = dumps(self.server.api.present(self.rtype, event.obj))
        else:
            encoded = event.encoded_object()
        await self.response.write(b'{"type":"' + kind.encode() + b'","object":' + encoded + b"}\n")

    async def bookmark(self, rv: str, initial_end: bool = False) -> None:
        if self.unencodable:
            raise _UnencodableEvent
        meta: JSON = {"resourceVersion": rv}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.rtype.kind, "apiVersion": self.rtype.api_version, "metadata": meta}
        if self.metadata_version is not None:
            obj = _partial_metadata(obj, self.metadata_version)
        await self.response.write(dumps({"type": "BOOKMARK", "object": obj}) + b"\n")

    async def error(self, status: JSON) -> None:
        await self.response.write(dumps({"type": "ERROR", "object": status}) + b"\n")


def _decode_json(raw: bytes) -> tuple[Any, str | None]:
    """(value, None) for valid JSON, else (None, Go's encoding/json error message)."""
    try:
        return json.loads(raw), None
    except ValueError:
        problem = gojson.syntax_error(raw)
        if problem is not None:
            return None, problem
        return json.loads(raw.decode("utf-8", "replace")), None  # Go accepts invalid UTF-8 (as U+FFFD)


def _unrecognized(kind: str, detail: str, raw: bytes) -> str:
    """transformDecodeError's message for a body without a usable apiVersion/kind, with summarizeData(body, 30)."""
    if not raw:
        summary = "<empty>"
    elif raw[:1] == b"{":
        summary = raw[:30].decode("utf-8", "replace") + (" ..." if len(raw) > 30 else "")
    else:
        summary = raw[:30].hex() + (" ..." if len(raw) > 30 else "")
    return f"the object provided is unrecognized (must be of type {kind}): {detail} ({summary})"


# PyYAML's wording → libyaml's (what sigs.k8s.io/yaml reports through go-yaml).
_YAML_PROBLEMS = (
    (re.compile(r"^expected (.+), but (?:found|got) .*$"), r"did not find expected \1"),
    (re.compile(r"^mapping values are not allowed here$"), "mapping values are not allowed in this context"),
    (re.compile(r"^found character .* that cannot start any token$"), "found character that cannot start any token"),
)


def _go_yaml_error(exc: yaml.YAMLError) -> str:
    """go-yaml's `yaml: line N: <problem>` for a YAML error (parser.fail): the problem line (scanner errors count
    from 1, parser errors from 0), else the context line; no line when it is 0."""
    problem = str(getattr(exc, "problem", "") or "") or "unknown problem parsing YAML content"
    at_stream_end = "<stream end>" in problem
    for pattern, replacement in _YAML_PROBLEMS:
        if pattern.match(problem):
            problem = pattern.sub(replacement, problem)
            break
    line = 0
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem_line = problem_mark.line if problem_mark is not None else 0
    if at_stream_end and problem_mark is not None and problem_mark.column:
        problem_line += 1  # libyaml puts STREAM-END at the start of a new line; PyYAML does not
    if problem_line:
        line = problem_line + (1 if isinstance(exc, yaml.scanner.ScannerError) else 0)
    elif context_mark is not None and context_mark.line:
        line = context_mark.line
    return f"yaml: line {line}: {problem}" if line else f"yaml: {problem}"


def _decode_patch(raw: bytes, content_type: str) -> Any:
    if content_type in (PATCH_APPLY, PATCH_APPLY_CBOR):
        try:
            return yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"error decoding YAML: {_one_line(str(exc))}") from exc
    value, problem = _decode_json(raw)
    if problem is None and content_type in (PATCH_MERGE, PATCH_STRATEGIC) and not isinstance(value, dict | None):
        problem = f"json: cannot unmarshal {gojson.json_kind(value)} into Go value of type map[string]interface {{}}"
    if problem is not None:  # the strategic patcher does not prefix its decoding error
        raise errors.bad_request(problem if content_type == PATCH_STRATEGIC else f"error decoding patch: {problem}")
    return value


def _validate_watch_options(send_initial_events: str | None, match: str, continue_token: str) -> None:
    """validateWatchOptions: 422 `ListOptions.meta.k8s.io "" is invalid: …` for a bad sendInitialEvents and
    resourceVersionMatch combination (after the defaulting of legacy watches)."""
    causes: list[dict[str, str]] = []
    if send_initial_events is not None and match != "NotOlderThan":
        detail = "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
        causes.append(errors.forbidden_field("resourceVersionMatch", detail))
    if match:
        if send_initial_events is None:
            detail = "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
            causes.append(errors.forbidden_field("resourceVersionMatch", detail))
        if match != "NotOlderThan":
            causes.append(errors.unsupported_value("resourceVersionMatch", match, ["NotOlderThan"]))
        if continue_token:
            detail = "resourceVersionMatch is forbidden when continue is provided"
            causes.append(errors.forbidden_field("resourceVersionMatch", detail))
    if not causes:
        return
    messages = [c["message"] for c in causes]
    summary = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    wire = [
        {"reason": c["reason"], "message": c["message"].removeprefix(f"{c['field']}: "), "field": c["field"]}
        for c in causes
    ]
    details = {"name": "", "group": "meta.k8s.io", "kind": "ListOptions", "causes": wire}
    raise errors.APIError(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {summary}', details)


def _options_invalid(kind: str, cause: dict[str, str]) -> errors.APIError:
    """422 for bad Create/Update/PatchOptions, e.g. `CreateOptions.meta.k8s.io "" is invalid: fieldValidation: …`."""
    prefix = f"{cause['field']}: "
    detail = cause["message"][len(prefix) :] if cause["message"].startswith(prefix) else cause["message"]
    return errors.APIError(
        422,
        "Invalid",
        f'{kind}.meta.k8s.io "" is invalid: {cause["message"]}',
        {
            "name": "",
            "group": "meta.k8s.io",
            "kind": kind,
            "causes": [{"reason": cause["reason"], "message": detail, "field": cause["field"]}],
        },
    )


def _partial_metadata(obj: JSON, api_version: str) -> JSON:
    """`meta.AsPartialObjectMetadata`: the whole `metadata` (managedFields included), nothing else."""
    return {"kind": negotiation.METADATA, "apiVersion": api_version, "metadata": obj.get("metadata") or {}}


def _and_selector(existing: str, extra: str) -> str:
    return f"{existing},{extra}" if existing else extra


def _one_line(text: str) -> str:
    return " ".join(text.split())


_UA_MANAGER = re.compile(r"^([^/\s]+)")


def _manager_from_user_agent(user_agent: str) -> str:
    """The apiserver's default fieldManager: the User-Agent's program name."""
    match = _UA_MANAGER.match(user_agent)
    return match.group(1) if match else "unknown"


# ----------------------------------------------------------------------------------- lifecycle
class EmbeddedServer:
    """The embedded control plane's API server, running on an asyncio loop.

    Async use: `await server.start()` / `await server.stop()`. Sync use (tests driving kubectl,
    the kubernetes client, pykube): `with EmbeddedServer.run_in_thread() as server:` runs the
    loop in a background thread.
    """

    def __init__(self, settings: ServerSettings | None = None, clock: Clock | None = None) -> None:
        self.settings = settings or ServerSettings()
        self.api = ApiServer(clock=clock, history_size=self.settings.history_size)
        self.faults = Faults()
        self.http = HTTPServer(self.api, self.settings, self.faults)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.on_stop: list[Callable[[], Awaitable[None]]] = []
        self.controllers: dict[str, Controller] = {}

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        # handler_cancellation: a client going away mid-watch cancels its handler, so the watcher is released
        # at once (as the apiserver's request context is), not at the next event or the watch timeout.
        self._runner = web.AppRunner(
            self.http.app, access_log=None, handle_signals=False, shutdown_timeout=0.5, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        options = {name: dict(opts) for name, opts in self.settings.controller_options.items()}
        # The kubelet hands pods a kubeconfig for this server, so it needs the URL we just bound.
        options.setdefault("kubelet", {}).setdefault("server_url", self.url)
        for name in self.settings.controllers:
            controller = build_controller(name, self.api, options)
            controller.start()
            self.controllers[name] = controller

    async def stop(self) -> None:
        for hook in reversed(self.on_stop):
            with contextlib.suppress(Exception):
                await hook()
        for controller in reversed(list(self.controllers.values())):
            with contextlib.suppress(Exception):
                await controller.stop()
        self.controllers.clear()
        self.http.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "default") -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(kubeconfig_yaml(self.url, namespace))
        return target

    # -- thread mode -------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def run_in_thread(
        cls,
        settings: ServerSettings | None = None,
        clock: Clock | None = None,
        setup: Callable[[EmbeddedServer], Awaitable[None]] | None = None,
    ) -> Iterator[EmbeddedServer]:
        server = cls(settings, clock)
        ready = threading.Event()
        failure: list[BaseException] = []
        stop_event: list[asyncio.Event] = []

        async def main() -> None:
            try:
                await server.start()
                if setup is not None:
                    await setup(server)
                stop_event.append(asyncio.Event())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            await stop_event[0].wait()
            await server.stop()

        thread = threading.Thread(target=asyncio.run, args=(main(),), name="dops-emulator", daemon=True)
        thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        server._thread = thread
        try:
            yield server
        finally:
            if server.loop is not None and stop_event:
                server.loop.call_soon_threadsafe(stop_event[0].set)
            thread.join(30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server loop from another thread (thread mode) and return its result."""
        if self.loop is None:
            raise RuntimeError("server is not running")

        async def runner() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(30)


def kubeconfig_yaml(url: str, namespace: str = "default") -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dops-emulator", "cluster": {"server": url}}],
        "users": [{"name": "dops-emulator", "user": {"token": "dops-emulator"}}],
        "contexts": [
            {
                "name": "dops-emulator",
                "context": {"cluster": "dops-emulator", "user": "dops-emulator", "namespace": namespace},
            }
        ],
        "current-context": "dops-emulator",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)
