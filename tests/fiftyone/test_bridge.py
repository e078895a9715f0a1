"""The bridge's switch and its document conversion (the behaviour of every repo method is the differential's).

- `install()` makes FiftyOne's RepositoryFactory hand out the bridge; `uninstall()` gives back FiftyOne's repo.
- `install_from_env()` installs only with DOPS_FIFTYONE_BRIDGE=1 (namespace from DOPS_FIFTYONE_NAMESPACE, the
  cluster from the usual kubeconfig), and only once.
- `python -m dops.fiftyone delegated list|fail|delete` is FiftyOne's own CLI over the resources.
- FiftyOne's `fiftyone delegated` flows that the differential does not drive: `rerun_operation` through the
  bridge copies dops' run policy; a cancel through FiftyOne (`set_failed` without a required state) is recorded
  as a cancel; the documents are FiftyOne's own type with naive UTC timestamps and string ids.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fiftyone.factory.repo_factory import RepositoryFactory
from fiftyone.factory.repos.delegated_operation_doc import DelegatedOperationDocument as FiftyOneDocument
from fiftyone.operators.delegated import DelegatedOperationService as FiftyOneService

from dops import DelegatedOperationService
from dops.fiftyone import DopsDelegatedOperationRepo, install, install_from_env, installed, uninstall
from tests.fiftyone.conftest import REPO


def test_install_and_uninstall_switch_fiftyone_s_factory(dops_service: DelegatedOperationService) -> None:
    before = RepositoryFactory.repos.get("delegated_ops")
    bridge = install(DopsDelegatedOperationRepo(dops_service))
    try:
        assert installed() is bridge and FiftyOneService()._repo is bridge
        doc = FiftyOneService().queue_operation("@test/plugin/op")
        assert dops_service.get(doc.id).operator == "@test/plugin/op"  # a DelegatedOperation resource
    finally:
        uninstall()
    assert RepositoryFactory.repos.get("delegated_ops") is before and installed() is None


def test_install_from_env_needs_the_switch(embedded: Any, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(embedded.kubeconfig))
    assert install_from_env({}) is None and install_from_env({"DOPS_FIFTYONE_BRIDGE": "0"}) is None
    assert installed() is None
    try:
        bridge = install_from_env({"DOPS_FIFTYONE_BRIDGE": "1", "DOPS_FIFTYONE_NAMESPACE": namespace})
        assert bridge is not None and bridge.service.namespace == namespace
        assert install_from_env({"DOPS_FIFTYONE_BRIDGE": "true"}) is bridge  # once
        doc = FiftyOneService().queue_operation("@test/plugin/op")
        assert bridge.service.get(doc.id).namespace == namespace
    finally:
        uninstall()
    assert installed() is None


def test_documents_are_fiftyone_s_own(bridge_service: Any) -> None:
    doc = bridge_service.queue_operation("@test/plugin/op", context={"request_params": {"params": {"a": 1}}})
    got = bridge_service.get(doc.id)
    assert isinstance(doc, FiftyOneDocument) and isinstance(got, FiftyOneDocument)
    assert isinstance(got.id, str) and got.queued_at.tzinfo is None
    assert got.context.request_params == {"params": {"a": 1}}


def test_rerun_through_the_bridge_keeps_the_run_policy(
    bridge_service: Any, dops_service: DelegatedOperationService
) -> None:
    doc = bridge_service.queue_operation("@test/plugin/op")
    dops_service.repo.patch(dops_service.namespace, doc.id, {"spec": {"timeoutSeconds": 77, "retries": 2}})
    again = bridge_service.rerun_operation(doc.id)
    spec = dops_service.get(again.id).resource["spec"]
    assert again.id != doc.id and (spec["timeoutSeconds"], spec["retries"]) == (77, 2)


def test_a_fail_through_fiftyone_is_a_cancel_but_the_executor_s_is_not(
    bridge_service: Any, dops_service: DelegatedOperationService
) -> None:
    cancelled = bridge_service.queue_operation("@test/plugin/op")
    bridge_service.set_failed(cancelled.id)  # `fiftyone delegated fail`
    assert dops_service.get(cancelled.id).resource["status"].get("cancelledBy")
    ran = bridge_service.queue_operation("@test/plugin/op")
    bridge_service.set_running(ran.id)
    bridge_service.set_failed(ran.id, required_state="running")  # FiftyOne's executor recording its failure
    assert not dops_service.get(ran.id).resource["status"].get("cancelledBy")


def test_the_fiftyone_plugins_dir_of_the_tests_exists() -> None:
    assert (Path(__file__).parent / "plugins" / "tiny" / "fiftyone.yml").is_file()


def test_fiftyone_s_command_line_over_the_bridge(
    embedded: Any, namespace: str, dops_service: DelegatedOperationService, tmp_path: Path
) -> None:
    """`python -m dops.fiftyone delegated ...` is FiftyOne's own CLI, reading and writing the resources."""
    doc = dops_service.queue_operation("@test/plugin/listed", label="listed by fiftyone")
    env = {
        **os.environ,
        "KUBECONFIG": str(embedded.kubeconfig),
        "DOPS_FIFTYONE_NAMESPACE": namespace,
        "FIFTYONE_DO_NOT_TRACK": "true",
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]),
    }

    def fiftyone(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "dops.fiftyone", "delegated", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    listed = fiftyone("list")
    assert str(doc.id) in listed and "listed by fiftyone" in listed
    fiftyone("fail", str(doc.id))  # FiftyOne's `fail`: a cancel, recorded as one
    failed = dops_service.get(str(doc.id))
    assert failed.run_state == "failed" and failed.resource["status"].get("cancelledBy")
    fiftyone("delete", str(doc.id))
    assert dops_service.count() == 0
