"""`ResourceClient.count` / `DelegatedOperationService.count`: how counting talks to the API server.

Aspects covered:
- without selectors: one `limit=1` list read for `remainingItemCount`;
- with label and/or field selectors (`status.runState` is a CRD selectableField, so a run-state count is decided
  on the server): Tables without objects (`includeObject=None`), paged with `limit`/`continue`, never a list of
  objects and never metadata-only lists (metadata is most of a DelegatedOperation, see the method's docstring);
- the number is the same as the objects a plain list returns, across pages, and 0 when nothing matches;
- a server that cannot print Tables (answers the plain list whatever the Accept) is still counted right, across
  pages, even when an object carries a label named `cells` (rows are recognised by their `cells` key).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from dops import DelegatedOperationService
from dops.emulator import EmbeddedServer
from dops.emulator.server import AccessRecord, kubeconfig_yaml
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config
from tests.op_builders import operation

pytestmark = pytest.mark.both_planes

JSON = dict[str, Any]


def seed(repo: DelegatedOperationRepository, namespace: str) -> None:
    """op-0..op-6: even ones team=a; op-0..op-4 queued, op-5 and op-6 running."""
    for i in range(7):
        repo.create(namespace, operation(f"op-{i}", namespace).labels(team="a" if i % 2 == 0 else "b").build())
        repo.patch_status(namespace, f"op-{i}", {"status": {"runState": "queued" if i < 5 else "running"}})


@pytest.fixture
def requests_seen(dops_server: EmbeddedServer) -> Iterator[list[AccessRecord]]:
    log: list[AccessRecord] = []
    dops_server.http.access_log = log
    try:
        yield log
    finally:
        dops_server.http.access_log = None


def reads(log: list[AccessRecord], namespace: str) -> list[dict[str, str]]:
    return [
        r.query for r in log if r.method == "GET" and r.path.endswith(f"/namespaces/{namespace}/delegatedoperations")
    ]


def test_count_with_selectors_reads_cell_only_tables(
    repo: DelegatedOperationRepository, namespace: str, requests_seen: list[AccessRecord]
) -> None:
    seed(repo, namespace)
    requests_seen.clear()
    assert repo.count(namespace, field_selector="status.runState=queued", page_size=2) == 5
    queries = reads(requests_seen, namespace)
    assert len(queries) == 3  # 2 + 2 + 1
    assert all(q["includeObject"] == "None" and q["limit"] == "2" for q in queries)
    assert "continue" not in queries[0] and all(q.get("continue") for q in queries[1:])

    assert repo.count(namespace, label_selector="team=a") == 4
    assert repo.count(namespace, label_selector="team=a", field_selector="status.runState=running") == 1
    assert repo.count(namespace, field_selector="status.runState=failed") == 0
    plain = repo.list(namespace, field_selector="status.runState=queued").items
    assert len(plain) == 5


def test_count_without_selectors_reads_remaining_item_count(
    repo: DelegatedOperationRepository, namespace: str, requests_seen: list[AccessRecord]
) -> None:
    seed(repo, namespace)
    requests_seen.clear()
    assert repo.count(namespace) == 7
    assert [q.get("limit") for q in reads(requests_seen, namespace)] == ["1"]


def test_service_run_state_count_is_decided_on_the_server(
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    namespace: str,
    requests_seen: list[AccessRecord],
) -> None:
    seed(repo, namespace)
    requests_seen.clear()
    assert service.count(filters={"run_state": "queued"}) == 5
    assert service.count(filters={"run_state": "running"}) == 2
    queries = reads(requests_seen, namespace)
    assert [q.get("fieldSelector") for q in queries] == ["status.runState=queued", "status.runState=running"]
    assert all(q.get("includeObject") == "None" for q in queries)


class _PlainListServer(BaseHTTPRequestHandler):
    """Answers every list with plain DelegatedOperationList pages of two items (it cannot print Tables)."""

    items: ClassVar[list[JSON]] = []

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        start = int(query.get("continue", ["0"])[0])
        page = self.items[start : start + 2]
        meta: JSON = {"resourceVersion": "7"}
        if start + 2 < len(self.items):
            meta["continue"] = str(start + 2)
        body = json.dumps(
            {"kind": "DelegatedOperationList", "apiVersion": "dops.io/v1alpha1", "metadata": meta, "items": page}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_count_against_a_server_without_tables(tmp_path: Path) -> None:
    _PlainListServer.items = [
        {"metadata": {"name": f"op-{i}", "labels": {"cells": "x"} if i == 1 else {}}, "spec": {}} for i in range(5)
    ]
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _PlainListServer)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    try:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kubeconfig_yaml(f"http://127.0.0.1:{stub.server_address[1]}"))
        client = KubeClient(load_config(kubeconfig))
        try:
            assert DelegatedOperationRepository(client).count("default", label_selector="team=a") == 5
        finally:
            client.close()
    finally:
        stub.shutdown()
        stub.server_close()
        thread.join(5)
