"""The `dops` CLI against the embedded control plane (CRDs from crds/, the process kubelet for pod logs).

Aspects covered (issue 6, CLI acceptance: "every command's happy path, `-o json` parses, `wait` exit codes,
`logs` after the pod is gone, error messages for unknown operations and unreachable servers"):
- submit (params, label, target, dataset; -o name/json) → list (table, wide, json, yaml, name; filters, search,
  sort, limit, -A) → get (summary, timeline, result, conditions, events; -o json/yaml);
- wait: exit 0 on completed, 1 on failed, 1 on completed while waiting for failed, 1 on timeout, 3 when the
  operation is unknown or deleted while waiting; submit --wait and rerun --wait (0 / 1);
- fail (the reason becomes the error message; terminal operations refused), rerun (a new operation, original
  untouched), delete (running refused without --force), pin/unpin, label, archive/unarchive, cleanup (filters,
  dry run, never running operations, --orphan);
- logs: from the pod while it exists (and -f until it exits), from the archive (status.logPath: a path, a
  file:// URL, an fsspec URL) after the pod is gone, --tail, clear errors when there is nothing to read;
- cleanup keeps pinned operations unless --include-pinned; cleanup and a delete of several operations ask on a
  terminal (answered through a pty), refuse without a terminal unless --yes (exit 2, nothing deleted) (issue 14);
- watch: one line per change until every operation is done; wait survives dropped watches and 410 Gone; Ctrl-C
  (SIGINT to the real process) exits 130; --until-done on an empty namespace exits 0 at once (issue 14);
- worker run|launch: the CLI runs dops.worker (`python -m dops worker run NS/NAME`, `worker launch --once`);
- unknown operations and an unreachable server: one line, exit 3;
- the console scripts: `python -m dops`, `dops`, and `kubectl dops` through the real kubectl binary (kubectl-dops
  found on PATH).
Operations are driven through DelegatedOperationService (no operator runs here); a driver thread starts only
once the command under test has opened its watch (the emulator's watch count), so nothing sleeps.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from typer.testing import CliRunner

from dops import DelegatedOperationService
from dops.api.types import ExecutionResult
from dops.cli.app import app
from dops.emulator import EmbeddedServer, ServerSettings
from dops.emulator.bootstrap import apply_manifest_paths
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config
from tests.builders import pod
from tests.helpers import CLI, eventually, find_binary
from tests.op_builders import delegation_target
from tests.planes import EmbeddedPlane, Plane, with_dops_crds

REPO = Path(__file__).resolve().parent.parent.parent
IMAGE = "dops-cli-test:1"
RESOURCE_PREFIX = "delegatedoperation.dops.io/"  # `-o name`, as kubectl prints it
JSON = dict[str, Any]


pytestmark = pytest.mark.both_planes
# Tests naming `cluster` need the embedded server itself (its process kubelet for pods, its fault hooks).
EMBEDDED_ONLY_FIXTURES = ("cluster",)


@pytest.fixture(scope="module")
def cli_plane(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """A control plane with the dops CRDs: embedded with a process kubelet (IMAGE runs as a local process), or real."""
    if getattr(request, "param", "embedded") == "real":
        with with_dops_crds(request.getfixturevalue("real_plane")) as real:
            yield real
        return
    settings = ServerSettings(
        bookmark_interval=1.0,
        controllers=("kubelet",),
        controller_options={"kubelet": {"image_map": {"dops-cli-test:*": "process"}, "minimum_grace_period": 0.5}},
    )
    with EmbeddedServer.run_in_thread(settings) as server:
        server.call(lambda: apply_manifest_paths(server.api, [REPO / "crds"]))
        server.kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("cli") / "kubeconfig")  # type: ignore[attr-defined]
        yield EmbeddedPlane(server, server.kubeconfig)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def cluster(cli_plane: Plane) -> EmbeddedServer:
    """The embedded server of `cli_plane` (tests naming it run on the embedded plane only)."""
    assert isinstance(cli_plane, EmbeddedPlane)
    return cli_plane.server


@pytest.fixture(scope="module")
def kube(cli_plane: Plane) -> Iterator[KubeClient]:
    client = KubeClient(load_config(cli_plane.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def ns(kube: KubeClient) -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    kube.request(
        "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


@pytest.fixture
def svc(kube: KubeClient, ns: str) -> DelegatedOperationService:
    return DelegatedOperationService(DelegatedOperationRepository(kube), namespace=ns)


class Dops:
    """Runs `dops --kubeconfig K ARGS` in process (typer's CliRunner); `-n NS` is added unless given."""

    def __init__(self, plane: Plane, ns: str) -> None:
        self.plane = plane
        self.ns = ns
        self.runner = CliRunner()

    def __call__(self, *args: str, namespaced: bool = True) -> Any:
        extra = ["-n", self.ns] if namespaced and "-n" not in args and "-A" not in args else []
        argv = ["--kubeconfig", str(self.plane.kubeconfig), *args, *extra]
        return self.runner.invoke(app, argv, env={"COLUMNS": "250"})

    def watchers(self) -> list[Any]:
        """The open watches of DelegatedOperations: the emulator's Watcher objects in this test's namespace, or,
        on the real plane, one marker per WATCH the apiserver is serving (its long-running requests gauge)."""
        if isinstance(self.plane, EmbeddedPlane):
            server = self.plane.server
            store = server.api.store
            return server.call(
                lambda: [
                    w
                    for w in store.all_watchers()
                    if w.namespace == self.ns and w.resource[1] == "delegatedoperations" and not w.closed
                ]
            )
        metrics = self.plane.session().get(f"{self.plane.url}/metrics", timeout=10).text
        pattern = r'^apiserver_longrunning_requests\{[^}]*resource="delegatedoperations"[^}]*verb="WATCH"[^}]*\} (\d+)'
        return [object()] * sum(int(n) for n in re.findall(pattern, metrics, re.MULTILINE))

    def while_watching(self, drive: Callable[[], None]) -> Callable[[], None]:
        """Start `drive` in a thread once a watch that is not open now has opened; returns a join function."""
        before = self.watchers()  # kept alive, so identities cannot be reused
        failure: list[BaseException] = []

        def opened(now: list[Any]) -> bool:
            if self.plane.real:  # counts only: a new watch makes the count grow
                return len(now) > len(before)
            return any(all(w is not old for old in before) for w in now)

        def run() -> None:
            try:
                eventually(self.watchers, opened, timeout=60, describe="the CLI's watch to open")
                drive()
            except BaseException as exc:  # surfaced by join()
                failure.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def join() -> None:
            thread.join(timeout=30)
            if failure:
                raise failure[0]

        return join


@pytest.fixture
def dops(cli_plane: Plane, ns: str) -> Dops:
    return Dops(cli_plane, ns)


def queue(svc: DelegatedOperationService, operator: str = "@dops/examples/count", **kwargs: Any) -> str:
    params = kwargs.pop("params", {"n": 3})
    request = {"params": params, **kwargs.pop("request", {})}
    doc = svc.queue_operation(operator, context={"request_params": request}, **kwargs)
    assert doc.id is not None
    return doc.id


def complete(svc: DelegatedOperationService, name: str, result: Any = None) -> None:
    svc.set_running(name, progress={"progress": 0.5, "label": "half"})
    svc.set_completed(name, result=result if result is not None else {"count": 3})


def fail_op(svc: DelegatedOperationService, name: str, message: str = "boom") -> None:
    svc.set_running(name)
    svc.set_failed(name, result=ExecutionResult(error=f"Traceback ...\nRuntimeError: {message}", error_message=message))


def table_rows(stdout: str) -> dict[str, list[str]]:
    """NAME → cells of a table printed by `dops list` (header and rule skipped)."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0].startswith("dop-"):
            rows[cells[0]] = cells
    return rows


# --------------------------------------------------------------------------------------------- submit / list / get


def test_submit_then_list_in_every_output_format(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI submit + list: the queued operation carries the params, label, target and dataset; list shows
    it as a table, wide table, JSON (parses), YAML (parses) and names."""
    result = dops("submit", "@dops/examples/count", "--param", "n=5", "-p", "tag=x", "--label", "count five",
                  "--target", "gpu", "--dataset", "ds1", "-o", "name")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(RESOURCE_PREFIX)  # -o name as kubectl create prints it
    name = result.stdout.strip().removeprefix(RESOURCE_PREFIX)
    doc = svc.get(name)
    assert doc.operator == "@dops/examples/count" and doc.label == "count five" and doc.delegation_target == "gpu"
    assert doc.context is not None and doc.context.params == {"n": 5, "tag": "x"}
    assert doc.context.dataset_name == "ds1" and str(doc.run_state) == "queued"

    table = dops("list")
    assert table.exit_code == 0, table.output
    cells = table_rows(table.stdout)[name]
    assert cells[1:5] == ["count", "five", "@dops/examples/count", "queued"]  # NAME LABEL OPERATOR STATE AGE
    wide = dops("list", "-o", "wide")
    assert "gpu" in table_rows(wide.stdout)[name] and "ds1" in table_rows(wide.stdout)[name]

    as_json = json.loads(dops("list", "-o", "json").stdout)
    assert as_json["kind"] == "List" and [i["metadata"]["name"] for i in as_json["items"]] == [name]
    assert as_json["items"][0]["spec"]["context"]["params"] == {"n": 5, "tag": "x"}
    as_yaml = yaml.safe_load(dops("list", "-o", "yaml").stdout)
    assert as_yaml["items"][0]["status"]["runState"] == "queued"
    assert dops("list", "-o", "name").stdout == f"{RESOURCE_PREFIX}{name}\n"

    submitted_json = json.loads(dops("submit", "@dops/examples/echo", "-o", "json").stdout)
    assert submitted_json["kind"] == "DelegatedOperation" and submitted_json["status"]["runState"] == "queued"


def test_list_filters_search_sort_limit_and_all_namespaces(
    dops: Dops, svc: DelegatedOperationService, kube: KubeClient
) -> None:
    """issue 6 / CLI list: --state/--operator/--target/--dataset filters, --search (regex on operator and label),
    --sort-by/--reverse, --limit, archived hidden unless -a, and -A across namespaces."""
    a = queue(svc, "@dops/examples/count", label="alpha", delegation_target="gpu", request={"dataset_name": "ds1"})
    b = queue(svc, "@dops/examples/echo", label="beta")
    c = queue(svc, "@dops/examples/echo", label="gamma")
    complete(svc, b)
    svc.archive_operation(c)

    def names(*args: str) -> list[str]:
        result = dops("list", "-o", "name", *args)
        assert result.exit_code == 0, result.output
        return [n.removeprefix(RESOURCE_PREFIX) for n in result.stdout.split()]

    assert names() == [b, a]  # newest first; the archived one hidden
    assert names("-a") == [c, b, a]
    assert names("--state", "completed") == [b]
    assert names("--operator", "@dops/examples/count") == [a]
    assert names("--target", "gpu") == [a]
    assert names("--dataset", "ds1") == [a]
    assert names("--search", "^be") == [b]  # matches the label
    assert names("--search", "examples/c") == [a]  # matches the operator
    assert names("--sort-by", "label", "--reverse") == [a, b]
    assert names("--sort-by", "label") == [b, a]
    assert names("--limit", "1") == [b]

    other = f"{dops.ns}-b"
    kube.request(
        "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}
    )
    d = queue(DelegatedOperationService(svc.repo, namespace=other), label="delta")
    everywhere = dops("list", "-A", "-o", "custom-columns=NS:.metadata.namespace,NAME:.metadata.name")
    rows = [line.split() for line in everywhere.stdout.splitlines()]
    assert [other, d] in rows and [dops.ns, a] in rows
    table = dops("list", "-A")
    assert "NAMESPACE" in table.stdout.splitlines()[0]
    assert any(line.split()[:2] == [other, d] for line in table.stdout.splitlines())


def test_get_shows_status_timeline_result_conditions_and_events(
    dops: Dops, svc: DelegatedOperationService, kube: KubeClient
) -> None:
    """issue 6 / CLI get NAME: status, timeline, result, conditions and events; -o json/yaml is the resource."""
    name = queue(svc, label="counting")
    complete(svc, name, {"count": 3, "items": ["a", "b"]})
    svc.repo.patch_status(svc.namespace, name, {"status": {"conditions": [
        {"type": "Succeeded", "status": "True", "reason": "Completed", "message": "all good",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})  # fmt: skip
    kube.request(
        "POST",
        f"/api/v1/namespaces/{svc.namespace}/events",
        body={"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{name}.1"}, "type": "Normal",
              "reason": "JobCreated", "message": f"created Job {name}",
              "involvedObject": {"kind": "DelegatedOperation", "name": name, "namespace": svc.namespace,
                                 "apiVersion": "dops.io/v1alpha1"}},
    )  # fmt: skip
    result = dops("get", name)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in ("counting", "completed", "Timeline", "queued", "started", '"count": 3', "Conditions",
                     "all good", "Events", "JobCreated", f"created Job {name}"):  # fmt: skip
        assert expected in out, f"{expected!r} missing from:\n{out}"

    resource = json.loads(dops("get", name, "-o", "json").stdout)
    assert resource["metadata"]["name"] == name and resource["status"]["result"]["result"]["count"] == 3
    assert "managedFields" not in resource["metadata"]
    assert yaml.safe_load(dops("get", name, "-o", "yaml").stdout)["status"]["runState"] == "completed"
    qualified = dops("get", f"{svc.namespace}/{name}", "-o", "json", namespaced=False)
    assert json.loads(qualified.stdout)["metadata"]["name"] == name


def test_unknown_operation_is_one_line_exit_3(dops: Dops) -> None:
    """issue 6 / CLI: every command names the missing operation and its namespace, exit 3."""
    commands = [["get"], ["wait"], ["logs"], ["rerun"], ["label"], ["fail"], ["delete"], ["pin"], ["archive"]]
    for command in commands:
        args = [*command, "dop-nope", *(["x"] if command == ["label"] else [])]
        result = dops(*args)
        assert result.exit_code == 3, (args, result.output)
        assert result.stderr == f'error: operation "dop-nope" not found in namespace "{dops.ns}"\n', args


# --------------------------------------------------------------------------------------------- wait


def test_wait_exits_0_when_completed_with_progress_lines(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI wait: follows the operation (watch) to completion, exit 0; off a terminal, progress is one
    line per change on stderr; the outcome line goes to stdout."""
    name = queue(svc)

    def drive() -> None:
        svc.set_running(name, progress={"progress": 0.25, "label": "quarter"})
        svc.set_progress(name, {"progress": 0.75, "label": "most"})
        svc.set_completed(name, result={"count": 3})

    join = dops.while_watching(drive)
    result = dops("wait", name, "--timeout", "30s")
    join()
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"operation {name} completed")
    assert result.stdout.splitlines()[-1] == 'result: {"count": 3}'  # the result at the end (issue 14)
    assert f"{name}: queued" in result.stderr and f"{name}: completed" in result.stderr


def test_wait_exit_codes_for_failed_operations(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI wait exit codes: 1 when the operation failed (reason in the error line); --for failed turns
    that into 0 and a completed operation into 1."""
    failed = queue(svc)
    join = dops.while_watching(lambda: fail_op(svc, failed, "disk full"))
    result = dops("wait", failed)
    join()
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1].startswith(f"error: operation {failed} failed")
    assert result.stderr.splitlines()[-1].endswith(": disk full")
    assert dops("wait", failed, "--for", "failed").exit_code == 0
    assert dops("wait", failed, "--for", "completed").exit_code == 1

    done = queue(svc)
    complete(svc, done)
    assert dops("wait", done, "--for", "completed").exit_code == 0
    assert dops("wait", done, "--for", "terminal").exit_code == 0
    assert dops("wait", done, "--for", "failed").exit_code == 1


def test_wait_timeout_and_deletion(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI wait: --timeout passes → exit 1 naming the current state; deleted while waiting → exit 3."""
    name = queue(svc)
    result = dops("wait", name, "--timeout", "0.5s")
    assert result.exit_code == 1
    assert f'waiting for operation "{name}" to be terminal (it is queued)' in result.stderr
    assert dops("wait", name, "--timeout", "0").exit_code == 1  # check once

    join = dops.while_watching(lambda: svc.delete_operation(name))
    deleted = dops("wait", name, "--timeout", "30s")
    join()
    assert deleted.exit_code == 3 and f'operation "{name}" was deleted while waiting' in deleted.stderr


def test_wait_resumes_dropped_watches_and_relists_after_410(
    cluster: EmbeddedServer, dops: Dops, svc: DelegatedOperationService
) -> None:
    """issue 6 / CLI wait (k8s-api-surface: watch resume from the last resourceVersion; 410 Gone → relist): a wait
    survives a dropped watch stream and an expired resourceVersion, and still sees the completion."""
    name = queue(svc)
    url = cluster.url  # the emulator's fault hooks drop and expire the watch

    def new_watch(before: list[Any]) -> None:
        eventually(dops.watchers, lambda now: any(all(w is not old for old in before) for w in now), timeout=60,
                   describe="the CLI to watch again")  # fmt: skip

    def drive() -> None:
        before = dops.watchers()
        assert requests.post(f"{url}/__emulator/watches/drop", timeout=5).json()["dropped"] >= 1
        new_watch(before)
        before = dops.watchers()
        assert requests.post(f"{url}/__emulator/watches/expire", timeout=5).json()["expired"] >= 1
        new_watch(before)
        complete(svc, name)

    join = dops.while_watching(drive)
    result = dops("wait", name, "--timeout", "60s")
    join()
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"operation {name} completed")


def test_submit_wait_and_rerun_wait_exit_codes(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI submit --wait: 0 when the new operation completes, 1 when it fails; rerun --wait likewise."""
    created: list[str] = []

    def finish_newest(outcome: Callable[[DelegatedOperationService, str], None]) -> Callable[[], None]:
        def drive() -> None:
            # The CLI's watch may open before its operation is listed (on the real plane another client's watch
            # can also make the count grow): wait for an operation this test has not driven yet, once queued.
            doc = eventually(
                lambda: svc.list_operations()[0],
                lambda d: d.id not in created and d.run_state is not None,
                timeout=30,
                describe="the CLI's new operation, queued",
            )
            newest = doc.id
            assert newest is not None
            created.append(newest)
            outcome(svc, newest)

        return drive

    join = dops.while_watching(finish_newest(complete))
    ok = dops("submit", "@dops/examples/count", "-p", "n=2", "--wait", "--timeout", "30s")
    join()
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[0].startswith(f"operation {created[0]} queued")
    assert ok.stdout.splitlines()[-2].startswith(f"operation {created[0]} completed")
    assert ok.stdout.splitlines()[-1] == 'result: {"count": 3}'  # the result at the end (issue 14)

    join = dops.while_watching(finish_newest(fail_op))
    bad = dops("rerun", created[0], "--wait", "--timeout", "30s")
    join()
    assert bad.exit_code == 1, bad.output
    assert f"operation {created[1]} queued as a rerun of {created[0]}" in bad.stdout
    assert bad.stderr.splitlines()[-1].endswith(": boom")


# --------------------------------------------------------------------------------------------- state changes


def test_fail_records_the_reason_and_refuses_terminal_operations(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI fail: queued/running operations become failed with --reason as the error message;
    completed ones are left alone (exit 1); several names at once."""
    queued, running, done = queue(svc), queue(svc), queue(svc)
    svc.set_running(running)
    complete(svc, done)
    result = dops("fail", queued, running, "--reason", "no longer needed")
    assert result.exit_code == 0, result.output
    for name in (queued, running):
        doc = svc.get(name)
        assert str(doc.run_state) == "failed"
        assert doc.result is not None and doc.result.error_message == "no longer needed"
        assert f"operation {name} marked as failed: no longer needed" in result.stdout
    refused = dops("fail", done)
    assert refused.exit_code == 1 and "already completed" in refused.stderr
    assert str(svc.get(done).run_state) == "completed"


def test_rerun_queues_a_copy(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI rerun: a new operation with the same operator, params and label; the original is untouched;
    non-rerunnable operations are refused (exit 1)."""
    original = queue(svc, params={"n": 7}, label="seven")
    complete(svc, original)
    result = dops("rerun", original, "-o", "name")
    assert result.exit_code == 0, result.output
    copy = result.stdout.strip().removeprefix(RESOURCE_PREFIX)
    assert copy != original
    new = svc.get(copy)
    assert str(new.run_state) == "queued" and new.label == "seven"
    assert new.context is not None and new.context.params == {"n": 7}
    assert str(svc.get(original).run_state) == "completed"
    locked = queue(svc, rerunnable=False)
    refused = dops("rerun", locked)
    assert refused.exit_code == 1 and "not marked as rerunnable" in refused.stderr


def test_delete_refuses_running_operations_without_force(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI delete: deletes; a running operation only with --force (FiftyOne refuses running ones)."""
    idle, running = queue(svc), queue(svc)
    svc.set_running(running)
    result = dops("delete", idle, running, "--yes")
    assert result.exit_code == 1
    assert f"operation {idle} deleted" in result.stdout and "is running" in result.stderr
    assert [d.id for d in svc.list_operations()] == [running]
    forced = dops("delete", running, "--force")
    assert forced.exit_code == 0 and svc.list_operations() == []


def test_pin_label_archive(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI pin/unpin, label, archive/unarchive: spec fields change; archive only finished operations."""
    name, other = queue(svc), queue(svc)
    assert dops("pin", name).exit_code == 0 and svc.get(name).pinned
    assert dops("unpin", name).exit_code == 0 and not svc.get(name).pinned
    labelled = dops("label", name, "a better label")
    assert labelled.exit_code == 0 and svc.get(name).label == "a better label"
    refused = dops("archive", name)
    assert refused.exit_code == 1 and "only completed or failed operations can be archived" in refused.stderr
    complete(svc, name)
    assert dops("archive", name).exit_code == 0 and svc.get(name).archived
    assert dops("list", "-o", "name").stdout.split() == [f"{RESOURCE_PREFIX}{other}"]
    assert dops("unarchive", name).exit_code == 0 and not svc.get(name).archived
    assert dops("unarchive", name).exit_code == 1  # not archived any more


def test_cleanup_never_deletes_running_operations(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI cleanup (FiftyOne's options): filters ANDed, --dry-run deletes nothing, running and scheduled
    operations are skipped, --orphan means "no dataset"."""
    done = queue(svc, "@dops/examples/echo")
    complete(svc, done)
    failed = queue(svc, "@dops/examples/echo")
    fail_op(svc, failed)
    running = queue(svc, "@dops/examples/echo")
    svc.set_running(running)
    with_dataset = queue(svc, "@dops/examples/count", request={"dataset_id": "ds-1"})
    complete(svc, with_dataset)

    dry = dops("cleanup", "--operator", "@dops/examples/echo", "--dry-run")
    assert dry.exit_code == 0 and "2 operations would be deleted (1 running or scheduled skipped)" in dry.stdout
    assert len(svc.list_operations()) == 4

    echo = dops("cleanup", "--operator", "@dops/examples/echo", "--yes")
    assert echo.exit_code == 0 and "2 operations deleted (1 running or scheduled skipped)" in echo.stdout
    assert {d.id for d in svc.list_operations()} == {running, with_dataset}

    orphan_only = queue(svc)
    complete(svc, orphan_only)
    orphans = dops("cleanup", "--orphan", "-y")
    assert orphans.exit_code == 0, orphans.output
    assert {d.id for d in svc.list_operations()} == {running, with_dataset}

    assert dops("cleanup", "--state", "completed", "--yes").exit_code == 0
    assert {d.id for d in svc.list_operations()} == {running}


def test_cleanup_keeps_pinned_operations_unless_asked(dops: Dops, svc: DelegatedOperationService) -> None:
    """Issue 14 #4: a filter that matches a pinned operation does not delete it; --include-pinned does; the summary
    says how many pinned operations were kept and how to delete them."""
    kept, plain = queue(svc), queue(svc)
    complete(svc, kept)
    complete(svc, plain)
    svc.set_pinned(kept)
    dry = dops("cleanup", "--state", "completed", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [
        f"would delete {plain} (completed)",
        "1 operations would be deleted (1 pinned kept: --include-pinned deletes them)",
    ]
    result = dops("cleanup", "--state", "completed", "--yes")
    assert result.exit_code == 0, result.output
    assert "1 operations deleted (1 pinned kept: --include-pinned deletes them)" in result.stdout
    assert [d.id for d in svc.list_operations()] == [kept]
    pinned_too = dops("cleanup", "--state", "completed", "--include-pinned", "--yes")
    assert pinned_too.exit_code == 0 and f"operation {kept} deleted" in pinned_too.stdout
    assert svc.list_operations() == []


def test_bulk_deletes_need_yes_without_a_terminal(dops: Dops, svc: DelegatedOperationService) -> None:
    """Issue 14 #4: with stdin not a terminal, cleanup and a delete of several operations refuse with one line
    saying to pass --yes (exit 2) and delete nothing; --dry-run and a delete of one named operation need no --yes."""
    a, b = queue(svc), queue(svc)
    complete(svc, a)
    complete(svc, b)
    cleanup = dops("cleanup", "--state", "completed")
    assert cleanup.exit_code == 2, cleanup.output
    assert (
        cleanup.stderr
        == "error: cleanup deletes every operation that matches: pass --yes to confirm (stdin is not a terminal)\n"
    )
    several = dops("delete", a, b)
    assert several.exit_code == 2, several.output
    assert several.stderr == "error: this deletes 2 operations: pass --yes to confirm (stdin is not a terminal)\n"
    assert {d.id for d in svc.list_operations()} == {a, b}
    assert dops("cleanup", "--state", "completed", "--dry-run").exit_code == 0
    assert dops("delete", a).exit_code == 0
    assert [d.id for d in svc.list_operations()] == [b]


def on_a_terminal(cluster: Plane, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m dops ARGS` with a pty as stdin (a person at a terminal) typing `answer`."""
    argv = [sys.executable, "-m", "dops", "--kubeconfig", str(cluster.kubeconfig), *args]
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # fmt: skip
        try:
            os.write(controller, answer.encode() + b"\n")
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    finally:
        os.close(terminal)
        os.close(controller)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_bulk_deletes_ask_on_a_terminal(cli_plane: Plane, svc: DelegatedOperationService) -> None:
    cluster = cli_plane
    """Issue 14 #4: on a terminal, cleanup lists what it would delete and asks; "n" deletes nothing (exit 1), "y"
    deletes; a delete of several operations asks the same way."""
    a, b = queue(svc), queue(svc)
    complete(svc, a)
    fail_op(svc, b)
    declined = on_a_terminal(cluster, "n", "cleanup", "--state", "completed", "-n", svc.namespace)
    assert declined.returncode == 1, declined
    assert declined.stdout == f"would delete {a} (completed)\n"
    assert "Delete these 1 operations? [y/N]" in declined.stderr
    assert declined.stderr.rstrip().endswith("error: not confirmed: nothing deleted")
    assert {d.id for d in svc.list_operations()} == {a, b}
    accepted = on_a_terminal(cluster, "y", "cleanup", "--state", "completed", "-n", svc.namespace)
    assert accepted.returncode == 0, accepted
    assert f"operation {a} deleted" in accepted.stdout
    assert [d.id for d in svc.list_operations()] == [b]
    c = queue(svc)
    refused = on_a_terminal(cluster, "n", "delete", b, c, "-n", svc.namespace)
    assert refused.returncode == 1 and f"Delete 2 operations ({b}, {c})? [y/N]" in refused.stderr, refused
    assert {d.id for d in svc.list_operations()} == {b, c}
    deleted = on_a_terminal(cluster, "y", "delete", b, c, "-n", svc.namespace)
    assert deleted.returncode == 0, deleted
    assert svc.list_operations() == []


# --------------------------------------------------------------------------------------------- logs


def worker_pod(name: str, namespace: str, operation: str, script: str) -> JSON:
    body = pod(name, namespace, command=[sys.executable, "-u", "-c", script], image=IMAGE,
               labels={"dops.io/operation": operation})  # fmt: skip
    body["spec"]["containers"][0]["name"] = "worker"
    return body


def pod_phase(kube: KubeClient, namespace: str, name: str) -> str:
    return str((kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}").get("status") or {}).get("phase"))


def test_logs_from_the_pod_then_from_the_archive(
    cluster: EmbeddedServer, dops: Dops, svc: DelegatedOperationService, kube: KubeClient, tmp_path: Path
) -> None:
    """issue 6 / CLI logs: while the pod exists the log comes from it (pods/log); after the pod is gone it comes
    from status.logPath (a local path or file:// URL); --tail applies to both; --archived forces the archive."""
    name = queue(svc)
    pod_name = f"{name}-w1"
    script = "print('from the pod 1'); print('from the pod 2')"
    kube.request(
        "POST", f"/api/v1/namespaces/{svc.namespace}/pods", body=worker_pod(pod_name, svc.namespace, name, script)
    )
    svc.set_running(name)
    svc.repo.patch_status(svc.namespace, name, {"status": {"podName": pod_name}})
    eventually(lambda: pod_phase(kube, svc.namespace, pod_name), lambda p: p == "Succeeded", timeout=20,
               describe="the worker pod to finish")  # fmt: skip
    result = dops("logs", name)
    assert result.exit_code == 0, result.output
    assert result.stdout == "from the pod 1\nfrom the pod 2\n"
    assert dops("logs", name, "--tail", "1").stdout == "from the pod 2\n"

    archive = tmp_path / "archive" / f"{name}.log"
    archive.parent.mkdir()
    archive.write_text("archived 1\narchived 2\narchived 3\n")
    svc.set_completed(name, log_path=str(archive))
    forced = dops("logs", name, "--archived")
    assert forced.exit_code == 0 and forced.stdout == "archived 1\narchived 2\narchived 3\n"

    kube.request("DELETE", f"/api/v1/namespaces/{svc.namespace}/pods/{pod_name}", body={"gracePeriodSeconds": 0})
    eventually(
        lambda: requests.get(f"{cluster.url}/api/v1/namespaces/{svc.namespace}/pods/{pod_name}", timeout=5).status_code,
        lambda code: code == 404,
        timeout=20,
        describe="the pod to be gone",
    )
    after = dops("logs", name)
    assert after.exit_code == 0, after.output
    assert after.stdout == "archived 1\narchived 2\narchived 3\n"
    assert dops("logs", name, "--tail", "2").stdout == "archived 2\narchived 3\n"
    assert dops("logs", name, "-f").stdout == "archived 1\narchived 2\narchived 3\n"  # finished: nothing to follow

    svc.repo.patch_status(svc.namespace, name, {"status": {"logPath": archive.as_uri()}})
    assert dops("logs", name).stdout == "archived 1\narchived 2\narchived 3\n"


def test_logs_from_an_fsspec_archive(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI logs: status.logPath may be an fsspec URL (here memory://, shared with the in-process CLI);
    a missing archive is one line, exit 3."""
    fsspec = pytest.importorskip("fsspec")
    name = queue(svc)
    url = f"memory://dops-logs/{svc.namespace}/{name}.log"
    fsspec.filesystem("memory").pipe(url, b"line one\nline two\n")
    svc.set_completed(name, log_path=url)
    result = dops("logs", name)
    assert result.exit_code == 0 and result.stdout == "line one\nline two\n"

    missing = queue(svc)
    svc.set_completed(missing, log_path=f"memory://dops-logs/{svc.namespace}/nothing.log")
    gone = dops("logs", missing)
    assert (
        gone.exit_code == 3
        and gone.stderr.startswith("error: the archived log memory://")
        and gone.stderr.count("\n") == 1
    )


def test_logs_follow_streams_until_the_container_exits(
    cluster: EmbeddedServer, dops: Dops, svc: DelegatedOperationService, kube: KubeClient, tmp_path: Path
) -> None:
    """issue 6 / CLI logs -f: streams the running pod's log (lines arrive while it runs) until the operation
    finishes."""
    name = queue(svc)
    pod_name = f"{name}-w1"
    gate = tmp_path / "go"
    script = (
        "import os, time\nprint('before', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)\nprint('after', flush=True)\n"
    )
    kube.request(
        "POST", f"/api/v1/namespaces/{svc.namespace}/pods", body=worker_pod(pod_name, svc.namespace, name, script)
    )
    svc.set_running(name)
    svc.repo.patch_status(svc.namespace, name, {"status": {"podName": pod_name}})

    def log_so_far() -> str:
        response = requests.get(f"{cluster.url}/api/v1/namespaces/{svc.namespace}/pods/{pod_name}/log", timeout=5)
        return response.text if response.status_code == 200 else ""

    def drive() -> None:
        eventually(log_so_far, lambda text: "before" in text, timeout=20, describe="the first line")
        gate.touch()
        eventually(lambda: pod_phase(kube, svc.namespace, pod_name), lambda p: p == "Succeeded", timeout=20,
                   describe="the pod to finish")  # fmt: skip
        svc.set_completed(name)

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    result = dops("logs", name, "-f")
    thread.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert result.stdout == "before\nafter\n"


def test_logs_errors_when_there_is_nothing_to_read(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI logs: a queued operation has no logs yet (exit 1); a finished one whose pod is gone and which
    has no archive says so (exit 3), naming the upload error when there is one."""
    queued = queue(svc)
    early = dops("logs", queued)
    assert early.exit_code == 1 and "is queued: it has no logs yet" in early.stderr
    done = queue(svc)
    complete(svc, done)
    missing = dops("logs", done)
    assert missing.exit_code == 3
    assert missing.stderr == f'error: operation "{done}" has no logs: its pod is gone and no archived log is recorded\n'
    svc.set_log_upload_error(done, "bucket not writable")
    assert "log upload error: bucket not writable" in dops("logs", done).stderr


# --------------------------------------------------------------------------------------------- watch


def test_watch_prints_changes_until_done(dops: Dops, svc: DelegatedOperationService) -> None:
    """issue 6 / CLI watch: the table, then one line per change (stdout is not a terminal), until every operation
    is done (--until-done)."""
    a, b = queue(svc), queue(svc)

    def drive() -> None:
        complete(svc, a)
        fail_op(svc, b)

    join = dops.while_watching(drive)
    result = dops("watch", "--until-done", "--timeout", "30s")
    join()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "LABEL"]
    assert any(line.split()[0] == a and "completed" in line.split() for line in lines[1:])
    assert any(line.split()[0] == b and "failed" in line.split() for line in lines[1:])
    assert any(line.split()[0] == a and "running" in line.split() for line in lines[1:])


def test_watch_until_done_on_an_empty_namespace_exits_0(dops: Dops) -> None:
    """Issue 14: nothing to wait for is done: `watch --until-done` in an empty namespace exits 0 at once (it waited
    forever), saying so on stderr."""
    started = time.monotonic()
    result = dops("watch", "--until-done", "--timeout", "30s")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 15
    assert result.stderr == f'No operations found in namespace "{dops.ns}": nothing to wait for.\n'


def test_watch_exits_130_on_ctrl_c(cluster: EmbeddedServer, dops: Dops, svc: DelegatedOperationService) -> None:
    # Embedded only: the Ctrl-C must land once the CLI's watch is open, which the emulator's watch list
    # shows exactly; the real plane's watch gauge counts every client's watches, so it cannot tell.
    """Issue 14: Ctrl-C (SIGINT to the real process) ends `dops watch` with exit code 130, as docs/cli.md says (it
    exited 0, which a script cannot tell from "every operation finished")."""
    queue(svc)
    argv = [sys.executable, "-m", "dops", "--kubeconfig", str(cluster.kubeconfig), "watch", "-n", svc.namespace]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        eventually(dops.watchers, bool, timeout=30, describe="the watch of dops watch to open")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 130, (out, err)
    assert out.splitlines()[0].split()[:2] == ["NAME", "LABEL"]
    assert err == "interrupted\n"


# --------------------------------------------------------------------------------------------- processes


def dops_process(cluster: Plane, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m dops --kubeconfig K ARGS` in a subprocess (as the kubelet runs the worker image)."""
    argv = [sys.executable, "-m", "dops", "--kubeconfig", str(cluster.kubeconfig), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_worker_run_and_launch_commands(cli_plane: Plane, svc: DelegatedOperationService, kube: KubeClient) -> None:
    """issue 6 / CLI worker run|launch: `dops worker run NS/NAME` (the Job container's command) runs one operation
    through dops.worker; `dops worker launch --once` runs the queued operations of a `mode: external` target."""
    cluster = cli_plane
    name = queue(svc, "@dops/examples/echo", params={"message": "hi"})
    ran = dops_process(cluster, "worker", "run", f"{svc.namespace}/{name}", "--from-queued")
    assert ran.returncode == 0, ran.stderr
    doc = svc.get(name)
    assert str(doc.run_state) == "completed" and doc.result is not None and doc.result.result == {"message": "hi"}

    kube.request(
        "POST",
        f"/apis/dops.io/v1alpha1/namespaces/{svc.namespace}/delegationtargets",
        body=delegation_target("outside", svc.namespace, mode="external"),
    )
    external = queue(svc, "@dops/examples/echo", params={"message": "out"}, delegation_target="outside")
    launched = dops_process(cluster, "worker", "launch", "--once", "--target", "outside", "-n", svc.namespace)
    assert launched.returncode == 0, launched.stderr
    assert str(svc.get(external).run_state) == "completed"
    usage = dops_process(cluster, "worker", "run")
    assert usage.returncode == 2 and usage.stderr.startswith("error: Missing argument")


def test_operator_command_runs_the_dops_operator(
    cli_plane: Plane, svc: DelegatedOperationService, tmp_path: Path
) -> None:
    """issue 6 / CLI operator: `dops operator -n NS` runs dops.handlers.run_operator against the --kubeconfig
    cluster (the queued operation gets scheduled with a Job); conflicting options are a usage error."""
    cluster = cli_plane
    conflict = dops_process(cluster, "operator", "-n", svc.namespace, "-A")
    assert conflict.returncode == 2 and conflict.stderr.startswith("error: give either -n/--namespace or -A")
    env = dict(os.environ, DOPS_HEALTH_PORT="0", DOPS_METRICS_PORT="0", DOPS_LOG_ARCHIVE=str(tmp_path / "logs"))
    argv = [sys.executable, "-m", "dops", "--kubeconfig", str(cluster.kubeconfig), "operator", "-n", svc.namespace]
    log = (tmp_path / "operator.log").open("wb")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        name = queue(svc, "@dops/examples/echo")
        doc = eventually(lambda: svc.get(name), lambda d: d.job_name is not None, timeout=30,
                         describe="the operator to schedule the operation")  # fmt: skip
        assert str(doc.run_state) in ("scheduled", "running")
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # shutting the operator down is dops.handlers' business, tested there
            process.kill()
            process.wait(timeout=15)
        log.close()


def test_unreachable_server_is_one_line_exit_3(tmp_path: Path) -> None:
    """issue 6 / CLI: a server that went away → `error: cannot reach the Kubernetes API at URL: connection refused`,
    exit 3 (the real console script, in a subprocess)."""
    with EmbeddedServer.run_in_thread(ServerSettings()) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        url = server.url
    result = subprocess.run([sys.executable, "-m", "dops", "--kubeconfig", str(kubeconfig), "list"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stderr == f"error: cannot reach the Kubernetes API at {url}: connection refused\n"
    assert result.stdout == ""


def test_console_script_and_kubectl_plugin(cli_plane: Plane, svc: DelegatedOperationService, tmp_path: Path) -> None:
    """issue 6 / CLI: `dops` is a console script, and `kubectl dops …` runs it as a kubectl plugin (kubectl-dops
    on PATH, .venv/bin first), with kubectl's KUBECONFIG."""
    cluster = cli_plane
    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "kubectl-dops").exists():
        pytest.skip(f"kubectl-dops is not installed in {venv_bin} (pip install -e .)")
    binary = find_binary("kubectl")
    if binary is None:
        pytest.skip("kubectl binary not available: run `python scripts/fetch_clients.py` (make test does)")
    name = queue(svc, label="via kubectl")
    home = tmp_path / "home"
    home.mkdir()
    env = CLI(binary, cluster.kubeconfig, home, {"PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}).env()

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        # Not CLI.run: kubectl refuses flags (its --cache-dir) before a plugin's name.
        return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, env=env)

    listed = kubectl("dops", "list", "-n", svc.namespace)
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout and "via kubectl" in listed.stdout
    resource = json.loads(kubectl("dops", "get", name, "-n", svc.namespace, "-o", "json").stdout)
    assert resource["metadata"]["name"] == name
    missing = kubectl("dops", "get", "dop-nope", "-n", svc.namespace)
    assert missing.returncode == 3
    assert missing.stderr.strip() == f'error: operation "dop-nope" not found in namespace "{svc.namespace}"'
    direct = subprocess.run([str(venv_bin / "dops"), "--kubeconfig", str(cluster.kubeconfig), "list", "-n",
                             svc.namespace, "-o", "name"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert direct.returncode == 0 and direct.stdout.strip() == f"{RESOURCE_PREFIX}{name}"
