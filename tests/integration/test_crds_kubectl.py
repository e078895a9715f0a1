"""kubectl acceptance for crds/ and examples/ (issue 4 acceptance), with the real kubectl binary.

Aspects covered:
- `kubectl apply -f crds/` then `kubectl apply -f examples/` succeed with default (strict) field validation.
- `kubectl get dops` shows OPERATOR, STATE, PROGRESS, LABEL, AGE; `-o wide` adds TARGET; `kubectl get dtarget`.
- `kubectl explain dop.spec.operator` prints the field's description.
- `kubectl get dops --field-selector status.runState=queued` (CRD selectableFields) and `-l dops.io/run-state=...`
  (mirror labels) select what the Python service wrote.
- invalid manifests are rejected with the CRD's messages: missing operator, progress 1.5, neither progress nor label,
  unknown run state, changing spec.operator, changing spec.context once running; DelegationTarget enums and rules.
- `kubectl wait --for=jsonpath='{.status.runState}'=completed` returns once the service completes the operation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dops import DelegatedOperationService
from dops.emulator import EmbeddedServer
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config
from tests.helpers import CLI
from tests.op_builders import delegation_target, operation

REPO = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.kubectl


@pytest.fixture
def installed(kubectl: CLI) -> CLI:
    out = kubectl.run("apply", "-f", str(REPO / "crds"))
    assert "delegatedoperations.dops.io created" in out.stdout and "delegationtargets.dops.io created" in out.stdout
    # Also refreshes kubectl's discovery cache, which (as on a real cluster) predates the CRDs: without it the
    # first short-name lookup right after the install fails once with "doesn't have a resource type".
    resources = kubectl.run("api-resources", "--api-group=dops.io", "--no-headers").stdout.splitlines()
    assert sorted(line.split()[:2] for line in resources) == [
        ["delegatedoperations", "dop,dops"],
        ["delegationpolicies", "dpolicy"],
        ["delegationtargets", "dtarget"],
    ]
    return kubectl


@pytest.fixture
def service(emulator: EmbeddedServer) -> DelegatedOperationService:
    client = KubeClient(load_config(emulator.kubeconfig))  # type: ignore[attr-defined]
    # The label mirror kept (as on a server without selectableFields), so that `-l dops.io/run-state` is tested too.
    return DelegatedOperationService(
        DelegatedOperationRepository(client), namespace="default", run_state_label="always"
    )


def manifest(tmp_path: Path, obj: dict[str, object]) -> str:
    path = tmp_path / f"{obj['metadata']['name']}.yaml"  # type: ignore[index]
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def test_apply_crds_and_examples_and_get(installed: CLI) -> None:
    kubectl = installed
    out = kubectl.run("apply", "-f", str(REPO / "examples"))
    for name in ("example-echo", "example-count", "example-sleep", "example-fail"):
        assert f"delegatedoperation.dops.io/{name} created" in out.stdout
    assert "delegationtarget.dops.io/examples created" in out.stdout
    table = kubectl.run("get", "dops").stdout.splitlines()
    assert table[0].split() == ["NAME", "OPERATOR", "STATE", "PROGRESS", "LABEL", "AGE"]
    assert any(line.startswith("example-count") and "@dops/examples/count" in line for line in table[1:])
    wide = kubectl.run("get", "dop", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "OPERATOR", "STATE", "PROGRESS", "LABEL", "TARGET", "AGE"]
    assert any(line.startswith("example-count") and "examples" in line.split()[-2] for line in wide[1:])
    targets = kubectl.run("get", "dtarget").stdout.splitlines()
    assert targets[0].split() == ["NAME", "MODE", "MAX", "RUNNING", "AGE"] and targets[1].split()[:3] == [
        "examples",
        "job",
        "2",
    ]
    stored = json.loads(kubectl.run("get", "dop", "example-echo", "-o", "json").stdout)
    assert stored["spec"]["rerunnable"] is True and stored["spec"]["pinned"] is False  # CRD defaults


def test_explain(installed: CLI) -> None:
    out = installed.run("explain", "dop.spec.operator").stdout
    assert "FIELD: operator <string>" in out and "URI of the operator to run" in out
    status = installed.run("explain", "dops.status.runState").stdout
    assert "Run state" in status
    assert "maxConcurrent" in installed.run("explain", "dtarget.spec").stdout


def test_field_and_label_selectors_see_service_writes(installed: CLI, service: DelegatedOperationService) -> None:
    queued = service.queue_operation("@dops/examples/echo", label="stays queued")
    running = service.queue_operation("@dops/examples/count", label="runs")
    service.set_running(running.id, required_state="queued")  # type: ignore[arg-type]
    by_field = installed.run("get", "dops", "--field-selector", "status.runState=queued", "-o", "name").stdout.split()
    assert by_field == [f"delegatedoperation.dops.io/{queued.id}"]
    by_label = installed.run("get", "dops", "-l", "dops.io/run-state=running", "-o", "name").stdout.split()
    assert by_label == [f"delegatedoperation.dops.io/{running.id}"]
    by_operator = installed.run(
        "get", "dops", "--field-selector", "spec.operator=@dops/examples/count", "-o", "name"
    ).stdout.split()
    assert by_operator == [f"delegatedoperation.dops.io/{running.id}"]
    row = installed.run("get", "dop", str(running.id), "--no-headers").stdout.split()
    assert row[1:3] == ["@dops/examples/count", "running"]


def test_invalid_operations_are_rejected_with_the_crds_messages(
    installed: CLI, service: DelegatedOperationService, tmp_path: Path
) -> None:
    kubectl = installed
    missing = kubectl.run("apply", "-f", manifest(tmp_path, operation("no-op").operator(None).build()), check=False)
    assert missing.returncode != 0 and "spec.operator: Required value" in missing.stderr

    doc = service.queue_operation("@dops/examples/count")
    name = str(doc.id)

    def patch_status(body: dict[str, object]) -> str:
        result = kubectl.run(
            "patch", "dop", name, "--subresource=status", "--type=merge", "-p", json.dumps(body), check=False
        )
        assert result.returncode != 0, result.stdout
        return result.stderr

    assert "status.progress.progress in body should be less than or equal to 1" in patch_status(
        {"status": {"progress": {"progress": 1.5}}}
    )
    assert "status.progress needs a progress value or a label" in patch_status(
        {"status": {"progress": {"updatedAt": "2025-01-01T00:00:00Z"}}}
    )
    assert 'status.runState: Unsupported value: "done"' in patch_status({"status": {"runState": "done"}})

    changed = kubectl.run("patch", "dop", name, "--type=merge", "-p", '{"spec":{"operator":"@x/y/z"}}', check=False)
    assert changed.returncode != 0 and "spec.operator is immutable" in changed.stderr

    edit_context = ["patch", "dop", name, "--type=merge", "-p", '{"spec":{"context":{"params":{"n":1}}}}']
    kubectl.run(*edit_context)  # still queued: allowed
    service.set_running(doc.id)  # type: ignore[arg-type]
    frozen = kubectl.run(*edit_context[:-1], '{"spec":{"context":{"params":{"n":2}}}}', check=False)
    assert frozen.returncode != 0
    assert "spec.context: Forbidden: spec.context is immutable once the operation has left the queued state" in (
        frozen.stderr
    )
    assert service.get(name).context.params == {"n": 1}  # type: ignore[union-attr]


def test_invalid_delegation_targets(installed: CLI, tmp_path: Path) -> None:
    bad_mode = installed.run("apply", "-f", manifest(tmp_path, delegation_target("t1", mode="cron")), check=False)
    assert bad_mode.returncode != 0 and 'spec.mode: Unsupported value: "cron"' in bad_mode.stderr
    external = delegation_target("t2", mode="external", podTemplate={"serviceAccountName": "x"})
    rejected = installed.run("apply", "-f", manifest(tmp_path, external), check=False)
    assert rejected.returncode != 0 and "podTemplate only applies to mode job" in rejected.stderr
    too_many = installed.run("apply", "-f", manifest(tmp_path, delegation_target("t3", maxConcurrent=0)), check=False)
    assert too_many.returncode != 0 and "spec.maxConcurrent" in too_many.stderr


def test_kubectl_wait_for_completion(installed: CLI, service: DelegatedOperationService) -> None:
    doc = service.queue_operation("@dops/examples/echo")
    waiter = installed.popen("wait", f"dop/{doc.id}", "--for=jsonpath={.status.runState}=completed", "--timeout=20s")
    try:
        service.set_running(doc.id)  # type: ignore[arg-type]
        service.set_completed(doc.id, result={"message": "hi"})  # type: ignore[arg-type]
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
    assert waiter.returncode == 0, err
    assert f"delegatedoperation.dops.io/{doc.id} condition met" in out
