"""dops.k8s error mapping and the CRD files in crds/ (pure: no server).

Aspects covered:
- error_from_response: each status code → its gateway error type carrying the parsed Status; AlreadyExists vs
  Conflict; Invalid/BadRequest/RequestTooLarge are ValueErrors, NotFound a LookupError; a failed JSON Patch
  `test` is told apart from a validation error.
- crds/: both CRDs pass the apiextensions checks; every schema node has a description; printer columns,
  selectable fields, short names, status subresource, defaults, enums and CEL rules the issue asks for;
  the limits in the schema agree with dops.api.constants.
- examples/: one operation per built-in example operator and one DelegationTarget.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from dops.api import constants as c
from dops.emulator.schema import StructuralSchema, validate_crd
from dops.k8s import errors

REPO = Path(__file__).resolve().parent.parent.parent
OPS_CRD = REPO / "crds" / "dops.io_delegatedoperations.yaml"
TARGETS_CRD = REPO / "crds" / "dops.io_delegationtargets.yaml"


def status_body(
    code: int, reason: str, message: str = "m", causes: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}
    body["message"] = message
    if causes is not None:
        body["details"] = {"causes": causes}
    return body


@pytest.mark.parametrize(
    ("code", "reason", "cls", "also"),
    [
        (400, "BadRequest", errors.BadRequest, ValueError),
        (401, "Unauthorized", errors.Unauthorized, errors.ApiError),
        (403, "Forbidden", errors.Forbidden, errors.ApiError),
        (404, "NotFound", errors.NotFound, LookupError),
        (409, "AlreadyExists", errors.AlreadyExists, errors.Conflict),
        (409, "Conflict", errors.Conflict, errors.ApiError),
        (410, "Expired", errors.Gone, errors.ApiError),
        (413, "RequestEntityTooLarge", errors.RequestTooLarge, ValueError),
        (422, "Invalid", errors.Invalid, ValueError),
        (429, "TooManyRequests", errors.TooManyRequests, errors.ApiError),
        (500, "InternalError", errors.ServerError, errors.ApiError),
        (503, "ServiceUnavailable", errors.ServerError, errors.ApiError),
    ],
)
def test_error_from_response(code: int, reason: str, cls: type[errors.ApiError], also: type[Exception]) -> None:
    error = errors.error_from_response(code, status_body(code, reason, "the message"), method="GET", path="/x")
    assert type(error) is cls and isinstance(error, also) and isinstance(error, errors.KubernetesError)
    assert error.code == code and error.reason == reason and error.message == "the message"
    assert error.status["kind"] == "Status"
    assert "GET /x" in str(error)


def test_error_from_a_non_status_body() -> None:
    error = errors.error_from_response(502, "<html>bad gateway</html>")
    assert isinstance(error, errors.ServerError) and "bad gateway" in error.message and error.status == {}


def test_patch_test_failure_vs_validation_error() -> None:
    test_failed = errors.error_from_response(422, status_body(422, "Invalid", "testing value /status/runState failed"))
    assert isinstance(test_failed, errors.Invalid) and test_failed.is_patch_test_failure
    invalid = errors.error_from_response(
        422,
        status_body(422, "Invalid", "x is invalid", [{"reason": "FieldValueInvalid", "field": "status.progress"}]),
    )
    assert isinstance(invalid, errors.Invalid) and not invalid.is_patch_test_failure
    assert invalid.field_causes == [{"reason": "FieldValueInvalid", "field": "status.progress"}]


# ---------------------------------------------------------------------------------------- CRDs


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def schema_nodes(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path or "<root>", node
    for key, sub in (node.get("properties") or {}).items():
        yield from schema_nodes(sub, f"{path}.{key}")
    if isinstance(node.get("items"), Mapping):
        yield from schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from schema_nodes(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("path", [OPS_CRD, TARGETS_CRD], ids=lambda p: p.name)
def test_crd_is_valid_and_fully_described(path: Path) -> None:
    crd = load(path)
    assert validate_crd(crd) == []
    (version,) = crd["spec"]["versions"]
    assert version["name"] == c.VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    StructuralSchema(schema)  # compiles, CEL included
    undocumented = [p for p, node in schema_nodes(schema) if not str(node.get("description", "")).strip()]
    # The root `metadata` is ObjectMeta, described by the server: kube-apiserver refuses a CRD whose schema
    # says anything about it beyond `type: object` (a description included).
    assert undocumented == [".metadata"]
    assert schema["properties"]["metadata"] == {"type": "object"}


def spec_of(path: Path) -> dict[str, Any]:
    version: dict[str, Any] = load(path)["spec"]["versions"][0]
    return version


def test_delegated_operation_crd_shape() -> None:
    crd = load(OPS_CRD)
    assert crd["metadata"]["name"] == c.CRD_NAME and crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == c.KIND and crd["spec"]["names"]["shortNames"] == ["dop", "dops"]
    version = spec_of(OPS_CRD)
    columns = {col["name"]: col for col in version["additionalPrinterColumns"]}
    assert list(columns) == ["Operator", "State", "Progress", "Label", "Target", "Age"]
    assert columns["Target"]["priority"] == 1 and all(
        col.get("priority", 0) == 0 for name, col in columns.items() if name != "Target"
    )
    selectable = [f["jsonPath"].lstrip(".") for f in version["selectableFields"]]
    assert selectable == list(c.SELECTABLE_FIELDS)
    schema = version["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    status = schema["properties"]["status"]["properties"]
    assert spec["required"] == ["operator"]
    assert spec["properties"]["operator"]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    assert spec["properties"]["rerunnable"]["default"] is True and spec["properties"]["pinned"]["default"] is False
    assert status["runState"]["enum"] == ["queued", "scheduled", "running", "completed", "failed"]
    assert (
        status["progress"]["properties"]["progress"]["minimum"],
        status["progress"]["properties"]["progress"]["maximum"],
    ) == (0, 1)
    assert status["result"]["properties"]["error"]["maxLength"] == c.MAX_ERROR_CHARS
    assert status["result"]["properties"]["errorMessage"]["maxLength"] == c.MAX_ERROR_MESSAGE_CHARS
    assert str(c.MAX_RESULT_BYTES) in status["result"]["description"]
    root_rules = " ".join(r["rule"] for r in schema["x-kubernetes-validations"])
    assert "oldSelf.status.runState == 'queued'" in root_rules
    assert "spec.context" in root_rules and "spec.pipeline" in root_rules


def test_delegation_target_crd_shape() -> None:
    crd = load(TARGETS_CRD)
    assert crd["metadata"]["name"] == c.TARGET_CRD_NAME and crd["spec"]["names"]["shortNames"] == ["dtarget"]
    spec = spec_of(TARGETS_CRD)["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["mode"]["enum"] == ["job", "external"] and spec["mode"]["default"] == "job"
    assert spec["allowImportPaths"]["default"] is False
    for field in ("image", "maxConcurrent", "timeoutSeconds", "retries", "runLinkTemplate"):
        assert field in spec
    assert set(spec["podTemplate"]["properties"]) >= {
        "resources",
        "nodeSelector",
        "tolerations",
        "serviceAccountName",
        "env",
    }


def test_examples_cover_every_builtin_operator() -> None:
    docs = [d for f in sorted((REPO / "examples").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    operators = {d["spec"]["operator"] for d in docs if d["kind"] == "DelegatedOperation"}
    assert operators >= {f"@dops/examples/{n}" for n in ("echo", "count", "sleep", "fail")}
    assert any(d["kind"] == "DelegationTarget" for d in docs)
    schema = StructuralSchema(spec_of(OPS_CRD)["schema"]["openAPIV3Schema"])
    for doc in docs:
        if doc["kind"] == "DelegatedOperation":
            assert schema.validate(doc) == [], doc["metadata"]["name"]
