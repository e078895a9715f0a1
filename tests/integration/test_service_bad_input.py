"""Bad input and API failures through DelegatedOperationService: clear errors, never a raw HTTP exception.

Aspects covered:
- unknown run states are not bad input: they match nothing, as in FiftyOne (test_service_fiftyone_parity.py);
- progress outside [0, 1], non-numeric, or with neither value nor label → ValueError (nothing written);
- invalid search fields / regexes and unsupported filter fields → ValueError;
- a result too large for the status → ValueError naming the 65536-byte limit, and the operation is unchanged;
- invalid names: doc ids, delegation targets, namespaces; labels that are not strings or too long;
- missing operations: get/rerun → ValueError("No operation found ..."); set_progress/set_label/set_pinned/
  set_log_* → the same ValueError (FiftyOne raises AttributeError by accident);
- the API server's own validation (a status the CRD rejects) surfaces as dops.k8s.Invalid, a ValueError;
- transient 503/429 answers are retried; persistent ones and an unreachable server raise dops.k8s errors
  (ApiUnavailable / ServerError), not requests/pykube exceptions; a cluster without the CRD → dops.k8s.NotFound;
- execute_queued_operations with nothing queued → []; execute_operation refuses non-documents and a bad interval.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dops import DelegatedOperationService, ExecutionResult
from dops.emulator import EmbeddedServer, ServerSettings
from dops.k8s import (
    ApiError,
    ApiUnavailable,
    DelegatedOperationRepository,
    Invalid,
    KubeClient,
    NotFound,
    ServerError,
    load_config,
)

pytestmark = pytest.mark.both_planes


@pytest.mark.parametrize(
    ("progress", "message"),
    [
        ({"progress": 1.5}, "between 0 and 1"),
        ({"progress": -1}, "between 0 and 1"),
        ({"progress": None, "label": None}, "needs a progress value or a label"),
        ({}, "needs a progress value or a label"),
        ("half", "Invalid progress"),
        ({"progress": "0.5"}, "number between 0 and 1"),
    ],
)
def test_bad_progress_writes_nothing(service: DelegatedOperationService, progress: object, message: str) -> None:
    doc = service.queue_operation("@dops/examples/count")
    with pytest.raises(ValueError, match=message):
        service.set_progress(doc.id, progress)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        service.set_running(doc.id, progress=progress)  # type: ignore[arg-type]
    assert service.get(doc.id).status is None and service.get(doc.id).run_state == "queued"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"search": {"x": {"context"}}}, "Invalid search field: context"),
        ({"search": {"(unclosed": {"label"}}}, "Invalid search term"),
        ({"nonsense": 1}, "Unsupported filter field"),
        ({"paging": {"skip": -5}}, "skip must be >= 0"),
        ({"paging": {"sort_by": "nope"}}, "invalid sort field"),
    ],
)
def test_bad_listing_arguments(service: DelegatedOperationService, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        service.list_operations(**kwargs)  # type: ignore[arg-type]


def test_bad_count_arguments(service: DelegatedOperationService) -> None:
    with pytest.raises(ValueError, match="Invalid search field: delegation_target"):
        service.count(search={"x": {"delegation_target"}})
    with pytest.raises(ValueError, match="Unsupported filter field"):
        service.count(filters={"$or": []})


def test_result_too_large(service: DelegatedOperationService) -> None:
    doc = service.queue_operation("@dops/examples/echo")
    service.set_running(doc.id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"65536 bytes \(MAX_RESULT_BYTES\)"):
        service.set_completed(doc.id, result={"blob": "x" * 100_000}, required_state="running")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not JSON-serializable"):
        service.set_completed(doc.id, result={"obj": object()})  # type: ignore[arg-type]
    assert service.get(doc.id).run_state == "running"  # type: ignore[arg-type]
    huge_error = "x" * 200_000
    failed = service.set_failed(doc.id, result=ExecutionResult(error=huge_error))  # type: ignore[arg-type]
    assert failed is not None and failed.result is not None and len(failed.result.error or "") == 32_768


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.get("Not_A_Name"), "DNS-1123"),
        (lambda s: s.get("a/b/c"), "invalid operation id"),
        (lambda s: s.get(""), "invalid operation id"),
        (lambda s: s.get(None), "invalid operation id"),
        (lambda s: s.set_running("UPPER"), "DNS-1123"),
        (lambda s: s.queue_operation("@dops/examples/echo", delegation_target="GPU pool"), "delegation_target"),
        (lambda s: s.queue_operation("@dops/examples/echo", label=3), "label must be a string"),
        (lambda s: s.queue_operation("@dops/examples/echo", label="x" * 2000), "longer than 1024"),
        (lambda s: s.queue_operation(""), "operator"),
        (lambda s: s.queue_operation("two words"), "invalid operator URI"),
        (lambda s: s.queue_operation("@dops/examples/echo", context={"params": {}}), "request_params"),
        (lambda s: s.set_label("dop-x", None), "label must be a string"),
    ],
)
def test_invalid_names_and_labels(service: DelegatedOperationService, call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(service)  # type: ignore[operator]
    assert service.count() == 0


def test_invalid_namespace(repo: DelegatedOperationRepository) -> None:
    with pytest.raises(ValueError, match="invalid namespace"):
        DelegatedOperationService(repo, namespace="Bad_NS")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get("dop-missing"),
        lambda s: s.rerun_operation("dop-missing"),
        lambda s: s.set_progress("dop-missing", {"progress": 0.1}),
        lambda s: s.set_label("dop-missing", "x"),
        lambda s: s.set_pinned("dop-missing"),
        lambda s: s.set_log_size("dop-missing", 1),
        lambda s: s.set_log_upload_error("dop-missing", "x"),
    ],
)
def test_missing_operations(service: DelegatedOperationService, call: object) -> None:
    with pytest.raises(ValueError, match="No operation found with ID dop-missing"):
        call(service)  # type: ignore[operator]


def test_server_side_validation_is_a_value_error(
    service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    doc = service.queue_operation("@dops/examples/echo")
    with pytest.raises(Invalid, match="less than or equal to 1") as info:
        repo.patch_status(service.namespace, doc.id, {"status": {"progress": {"progress": 7}}})  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and info.value.field_causes
    with pytest.raises(Invalid, match=r"spec\.operator is immutable"):
        repo.patch(service.namespace, doc.id, {"spec": {"operator": "@dops/examples/fail"}})  # type: ignore[arg-type]


@pytest.fixture
def impatient(dops_server: EmbeddedServer, namespace: str) -> DelegatedOperationService:
    """A service whose client waits at most 10 ms between retries (the server asks for 1 s)."""
    client = KubeClient(load_config(dops_server.kubeconfig), max_delay=0.01)  # type: ignore[attr-defined]
    return DelegatedOperationService(DelegatedOperationRepository(client), namespace=namespace)


def test_transient_errors_are_retried(dops_server: EmbeddedServer, impatient: DelegatedOperationService) -> None:
    service = impatient
    dops_server.call(lambda: dops_server.faults.add(503, "POST", "/delegatedoperations$", times=2))
    dops_server.call(lambda: dops_server.faults.add(429, "PATCH", "/status$", times=1))
    try:
        doc = service.queue_operation("@dops/examples/echo")
        assert doc.run_state == "queued"
    finally:
        dops_server.call(dops_server.faults.clear)


def test_persistent_errors_raise_gateway_errors(
    dops_server: EmbeddedServer, impatient: DelegatedOperationService
) -> None:
    service = impatient
    doc = service.queue_operation("@dops/examples/echo")
    dops_server.call(lambda: dops_server.faults.add(503, "*", "/delegatedoperations", times=-1))
    try:
        with pytest.raises(ApiUnavailable):
            service.get(doc.id)  # type: ignore[arg-type]
    finally:
        dops_server.call(dops_server.faults.clear)
    dops_server.call(lambda: dops_server.faults.add(500, "PATCH", "/status$", times=1))
    try:
        with pytest.raises(ServerError) as info:
            service.set_running(doc.id, required_state="queued")  # type: ignore[arg-type]
        assert info.value.code == 500 and "injected fault" in info.value.message
    finally:
        dops_server.call(dops_server.faults.clear)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{unused_port()}'}}}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u, namespace: ns}}]\n"
    )
    client = KubeClient(load_config(kubeconfig), retries=1, backoff=0.01)
    service = DelegatedOperationService(DelegatedOperationRepository(client))
    assert service.namespace == "ns"
    with pytest.raises(ApiUnavailable, match="cannot reach the API server"):
        service.queue_operation("@dops/examples/echo")
    with pytest.raises(ApiUnavailable):
        service.list_operations()


def test_cluster_without_the_crd(tmp_path: Path) -> None:
    with EmbeddedServer.run_in_thread(ServerSettings()) as bare:
        client = KubeClient(load_config(bare.write_kubeconfig(tmp_path / "kubeconfig")))
        service = DelegatedOperationService(DelegatedOperationRepository(client))
        with pytest.raises(NotFound) as info:
            service.queue_operation("@dops/examples/echo")
        assert isinstance(info.value, ApiError) and info.value.code == 404


def test_execution_bad_input(service: DelegatedOperationService) -> None:
    """execute_* (tests/integration/test_worker_executor.py): nothing queued → []; non-documents and a
    non-positive monitor interval are refused before anything is claimed."""
    assert service.execute_queued_operations() == []
    doc = service.queue_operation("@dops/examples/echo")
    with pytest.raises(TypeError, match="DelegatedOperationDocument"):
        service.execute_operation(doc.id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="check_interval_seconds must be > 0"):
        service.execute_operation(doc, monitor=True, check_interval_seconds=0)
    assert service.get(doc.id).run_state == "queued"
