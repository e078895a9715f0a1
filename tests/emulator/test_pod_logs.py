"""The pod log endpoint served by the kubelet (spec S13; statements 1, 53 and 60 at pod level).

Aspects covered:
- stdout and stderr captured to files that outlive the container, served as `text/plain`;
- `timestamps` (RFC3339Nano prefix), `tailLines`, `limitBytes`, `sinceTime`, `sinceSeconds`;
- `follow` streams new lines and ends when the container exits; on a finished container it returns at once;
- `previous` serves the run before a restart; the kubelet's 400 when there is none;
- `container`: required with several containers (the apiserver's message lists init containers first),
  invalid names rejected, init containers' logs served;
- the real error messages for waiting containers, an empty log for an unscheduled pod, 404 for a missing pod,
  422/400 for invalid options;
- the kubernetes client: `read_namespaced_pod_log(tail_lines=N)` and `Watch().stream(read_namespaced_pod_log,
  follow=True)` (statement 53);
- real `kubectl logs POD` with `--tail`, `--since`, `--timestamps`, `-c`, `--previous` and `-f` (statement 60).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import pytest

from tests.builders import pod
from tests.emulator.kubelet_support import (
    IMAGE,
    KubeletCluster,
    kubelet_cluster,
    process_pod,
    python,
    state_of,
    wait_for_file,
)
from tests.helpers import eventually

STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (.*)$")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletCluster]:
    with kubelet_cluster(tmp_path_factory.mktemp("logs")) as running:
        yield running


def gated_pod(name: str, gate: Path, before: str, after: str) -> dict[str, object]:
    """Prints `before`, waits for the test to create `gate`, prints `after`, exits 0."""
    script = f"import sys\nprint({before!r}, flush=True)\n" + wait_for_file(gate) + f"print({after!r}, flush=True)\n"
    return process_pod(name, script)


def test_log_query_options(cluster: KubeletCluster, tmp_path: Path) -> None:
    """S13: logs survive the container; `timestamps` prefixes RFC3339Nano; `tailLines`, `limitBytes`, `sinceTime`
    and `sinceSeconds` select what they say; stderr is captured too; the response is `text/plain`."""
    first, second = tmp_path / "first", tmp_path / "second"
    script = (
        "import sys\nprint('oops', file=sys.stderr, flush=True)\n"
        + wait_for_file(first)
        + "print('early 1', flush=True)\nprint('early 2', flush=True)\n"
        + wait_for_file(second)
        + "print('late 1', flush=True)\nprint('late 2', flush=True)\n"
    )
    # The gates order the stderr and stdout writes (two pipes have no order of their own, on a node either).
    cluster.create_pod(process_pod("logger", script))
    eventually(lambda: cluster.log_so_far("logger"), lambda t: t == "oops\n", describe="the stderr line")
    first.touch()
    eventually(lambda: cluster.log_so_far("logger"), lambda t: t.endswith("early 2\n"), describe="early lines")
    boundary = datetime.now(UTC)
    second.touch()
    cluster.wait_phase("logger", "Succeeded")

    response = cluster.logs("logger")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain"
    assert response.text == "oops\nearly 1\nearly 2\nlate 1\nlate 2\n"

    stamped = cluster.log_text("logger", timestamps="true").splitlines()
    matches = [STAMPED.match(line) for line in stamped]
    assert all(matches), stamped
    assert [m.group(2) for m in matches if m] == ["oops", "early 1", "early 2", "late 1", "late 2"]
    stamps = [m.group(1) for m in matches if m]
    assert stamps == sorted(stamps)

    assert cluster.log_text("logger", tailLines=2) == "late 1\nlate 2\n"
    assert cluster.log_text("logger", tailLines=0) == ""
    assert cluster.log_text("logger", tailLines=100) == response.text
    assert cluster.log_text("logger", limitBytes=10) == "oops\nearly"
    assert cluster.log_text("logger", tailLines=2, timestamps="true", limitBytes=35) == stamped[3][:35]
    since = boundary.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert cluster.log_text("logger", sinceTime=since) == "late 1\nlate 2\n"
    assert cluster.log_text("logger", sinceSeconds=3600) == response.text
    eventually(
        lambda: cluster.log_text("logger", sinceSeconds=1),
        lambda text: text == "",
        describe="every line older than 1 s",
    )


def test_invalid_log_options_are_rejected(cluster: KubeletCluster) -> None:
    """S13: invalid PodLogOptions → 422 Invalid (kind PodLogOptions) with the apiserver's messages; unparsable
    numbers → 400; missing pod → 404."""
    cluster.create_pod(process_pod("opts", "print('x')"))
    cluster.wait_phase("opts", "Succeeded")
    cases = {
        (("tailLines", "-1"),): "tailLines: Invalid value: -1: must be greater than or equal to 0",
        (("limitBytes", "0"),): "limitBytes: Invalid value: 0: must be greater than 0",
        (("sinceSeconds", "0"),): "sinceSeconds: Invalid value: 0: must be greater than 0",
        (("sinceSeconds", "5"), ("sinceTime", "2026-01-01T00:00:00Z")): (
            "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
        ),
    }
    for params, message in cases.items():
        response = cluster.logs("opts", **dict(params))
        assert response.status_code == 422, response.text
        body = response.json()
        assert (body["reason"], body["details"]["kind"]) == ("Invalid", "PodLogOptions")
        assert body["message"] == f'PodLogOptions "opts" is invalid: {message}'
    bad = cluster.logs("opts", tailLines="abc")
    assert bad.status_code == 400 and bad.json()["reason"] == "BadRequest"
    missing = cluster.logs("nope")
    assert missing.status_code == 404 and missing.json()["message"] == 'pods "nope" not found'
    assert missing.headers["Content-Type"] == "application/json"


def test_follow_streams_until_the_container_exits(cluster: KubeletCluster, tmp_path: Path) -> None:
    """S13: `follow=true` sends lines as they are written and closes the stream when the container exits;
    following a finished container returns its log at once."""
    gate = tmp_path / "gate"
    cluster.create_pod(gated_pod("follower", gate, "first", "second"))
    eventually(lambda: cluster.log_so_far("follower"), lambda t: t == "first\n", describe="first line")
    response = cluster.logs("follower", follow="true", stream=True, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/plain"
    lines = response.iter_lines(decode_unicode=True)
    assert next(lines) == "first"
    gate.touch()
    assert list(lines) == ["second"]  # ends: the container exited
    response.close()
    assert cluster.log_text("follower", follow="true", timeout=10) == "first\nsecond\n"


def test_previous_serves_the_run_before_a_restart(cluster: KubeletCluster, tmp_path: Path) -> None:
    """S13: `previous=true` serves the last terminated run of a restarted container; without one the kubelet
    answers 400 `previous terminated container "main" in pod "x" not found`."""
    counter = tmp_path / "n"
    script = f"""
        import pathlib, sys
        path = pathlib.Path({str(counter)!r})
        n = int(path.read_text()) if path.exists() else 0
        path.write_text(str(n + 1))
        print(f"run {{n}}")
        sys.exit(1 if n == 0 else 0)
    """
    cluster.create_pod(process_pod("restarted", script, restart="OnFailure"))
    cluster.wait_phase("restarted", "Succeeded")
    assert cluster.log_text("restarted") == "run 1\n"
    assert cluster.log_text("restarted", previous="true") == "run 0\n"
    cluster.create_pod(process_pod("once", "print('only')"))
    cluster.wait_phase("once", "Succeeded")
    response = cluster.logs("once", previous="true")
    assert response.status_code == 400
    assert response.json()["message"] == 'previous terminated container "main" in pod "once" not found'


def test_container_selection_in_multi_container_pods(cluster: KubeletCluster) -> None:
    """S13: with several containers `container` is required (400 listing init containers first, as the
    apiserver's VisitContainers order does); an unknown name is 400; each container's own log is served."""
    body = process_pod("multi", "print('from a')")
    body["spec"]["containers"][0]["name"] = "a"
    body["spec"]["containers"].append({"name": "b", "image": IMAGE, "command": python("print('from b')")})
    body["spec"]["initContainers"] = [{"name": "setup", "image": IMAGE, "command": python("print('from init')")}]
    cluster.create_pod(body)
    cluster.wait_phase("multi", "Succeeded")
    unnamed = cluster.logs("multi")
    assert unnamed.status_code == 400
    assert unnamed.json()["message"] == "a container name must be specified for pod multi, choose one of: [setup a b]"
    wrong = cluster.logs("multi", container="c")
    assert wrong.status_code == 400 and wrong.json()["message"] == "container c is not valid for pod multi"
    assert cluster.log_text("multi", container="a") == "from a\n"
    assert cluster.log_text("multi", container="b") == "from b\n"
    assert cluster.log_text("multi", container="setup") == "from init\n"


def test_waiting_containers_get_the_kubelet_messages(cluster: KubeletCluster) -> None:
    """S13: a container that has not started answers 400 `container "main" in pod "x" is waiting to start: <reason>`
    (with the kubelet's wording for image pulls); a pod no node runs yet has an empty log (204 No Content)."""
    ref = {"name": "V", "valueFrom": {"secretKeyRef": {"name": "absent-secret", "key": "k"}}}
    cluster.create_pod(process_pod("cfgerr", "print('x')", env=[ref]))
    cluster.wait_pod(
        "cfgerr",
        lambda p: (state_of(p).get("waiting") or {}).get("reason") == "CreateContainerConfigError",
        "CreateContainerConfigError",
    )
    response = cluster.logs("cfgerr")
    assert response.status_code == 400 and response.headers["Content-Type"] == "application/json"
    assert (
        response.json()["message"] == 'container "main" in pod "cfgerr" is waiting to start: CreateContainerConfigError'
    )

    cluster.create_pod(pod("nopull", command=["x"], image="quay.io/nobody/none:1"))
    cluster.wait_pod("nopull", lambda p: "waiting" in state_of(p) and "Image" in str(state_of(p)), "image pull failure")
    message = cluster.logs("nopull").json()["message"]
    assert message in (
        'container "main" in pod "nopull" is waiting to start: image can\'t be pulled',
        'container "main" in pod "nopull" is waiting to start: trying and failing to pull image',
    )

    unscheduled = pod("unscheduled", command=["x"], image=IMAGE)
    unscheduled["spec"]["schedulerName"] = "nobody"
    cluster.create_pod(unscheduled)
    empty = cluster.logs("unscheduled")
    assert (empty.status_code, empty.text, empty.headers.get("Content-Type")) == (204, "", None)
    for name in ("cfgerr", "nopull", "unscheduled"):
        cluster.delete_pod(name)


def test_kubernetes_client_reads_and_follows_logs(cluster: KubeletCluster, tmp_path: Path) -> None:
    """S13 / statement 53: `read_namespaced_pod_log(..., tail_lines=N)` returns the last N lines as `str`;
    `Watch().stream(read_namespaced_pod_log, follow=True)` yields lines until the process exits."""
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    cluster.create_pod(process_pod("k8s-tail", "for i in range(5):\n    print(f'line {i}')"))
    cluster.wait_phase("k8s-tail", "Succeeded")
    text = core.read_namespaced_pod_log("k8s-tail", "default", tail_lines=2)
    assert isinstance(text, str) and text == "line 3\nline 4\n"

    gate = tmp_path / "gate"
    cluster.create_pod(gated_pod("k8s-follow", gate, "one", "two"))
    eventually(lambda: cluster.log_so_far("k8s-follow"), lambda t: t == "one\n", describe="first line")
    received: list[str] = []
    stream = kubernetes.watch.Watch().stream(
        core.read_namespaced_pod_log, name="k8s-follow", namespace="default", follow=True, _request_timeout=30
    )
    for line in stream:
        received.append(line)
        if line == "one":
            gate.touch()
    assert received == ["one", "two"]


def test_kubectl_logs(cluster: KubeletCluster, tmp_path: Path) -> None:
    """S13 / statement 60 (pod half): real `kubectl logs POD` prints stdout and stderr; `--tail`, `--since`,
    `--timestamps`, `-c`, `--previous` and `-f` behave as documented."""
    kubectl = cluster.kubectl()
    stderr_gate = tmp_path / "stderr"
    script = "import sys\nprint('out 1')\nprint('out 2', flush=True)\n" + wait_for_file(stderr_gate)
    cluster.create_pod(process_pod("kc", script + "print('err 1', file=sys.stderr)"))
    eventually(lambda: cluster.log_so_far("kc"), lambda t: t == "out 1\nout 2\n", describe="stdout first")
    stderr_gate.touch()
    cluster.wait_phase("kc", "Succeeded")
    assert kubectl.run("logs", "kc").stdout == "out 1\nout 2\nerr 1\n"
    assert kubectl.run("logs", "kc", "--tail=1").stdout == "err 1\n"
    assert kubectl.run("logs", "kc", "--since=1h").stdout == "out 1\nout 2\nerr 1\n"
    stamped = kubectl.run("logs", "kc", "--timestamps").stdout.splitlines()
    assert [STAMPED.match(line).group(2) for line in stamped] == ["out 1", "out 2", "err 1"]  # type: ignore[union-attr]
    eventually(lambda: kubectl.run("logs", "kc", "--since=1s").stdout, lambda out: out == "", describe="--since=1s")

    gate = tmp_path / "gate"
    cluster.create_pod(gated_pod("kc-follow", gate, "before", "after"))
    eventually(lambda: cluster.log_so_far("kc-follow"), lambda t: t == "before\n", describe="first line")
    follower = kubectl.popen("logs", "-f", "kc-follow")
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()
        assert first == "before\n"
        gate.touch()
        rest, errors = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert (rest, follower.returncode) == ("after\n", 0), errors

    counter = tmp_path / "n"
    restarting = (
        f"import pathlib, sys\np = pathlib.Path({str(counter)!r})\nn = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\nprint(f'run {n}')\nsys.exit(1 if n == 0 else 0)"
    )
    body = process_pod("kc-multi", restarting, restart="OnFailure")
    body["spec"]["containers"].append({"name": "side", "image": IMAGE, "command": python("print('side car')")})
    cluster.create_pod(body)
    cluster.wait_phase("kc-multi", "Succeeded")
    defaulted = kubectl.run("logs", "kc-multi")
    assert defaulted.stdout == "run 1\n"
    assert 'Defaulted container "main" out of: main, side' in defaulted.stderr
    assert kubectl.run("logs", "kc-multi", "-c", "side").stdout == "side car\n"
    assert kubectl.run("logs", "kc-multi", "-c", "main", "--previous").stdout == "run 0\n"
    failure = kubectl.run("logs", "kc", "--previous", check=False)
    assert failure.returncode == 1
    assert 'previous terminated container "main" in pod "kc" not found' in failure.stderr


def test_logs_of_a_deleted_pod_are_gone_and_followers_are_released(tmp_path: Path) -> None:
    """S13: a follower of a container whose pod is deleted is released when the container is killed; the
    emulator stopping also ends open log streams (no hang)."""
    with kubelet_cluster(tmp_path) as cluster:
        cluster.create_pod(process_pod("endless", "import time\nprint('up', flush=True)\ntime.sleep(300)"))
        eventually(lambda: cluster.log_so_far("endless"), lambda t: t == "up\n", describe="up")
        response = cluster.logs("endless", follow="true", stream=True, timeout=30)
        collected: list[str] = []
        reader = threading.Thread(target=lambda: collected.extend(response.iter_lines(decode_unicode=True)))
        reader.start()
        cluster.delete_pod("endless")
        reader.join(15)
        assert not reader.is_alive(), "the follow stream did not end when the container was killed"
        assert collected == ["up"]
        cluster.wait_gone("endless")
        assert cluster.logs("endless").status_code == 404


def test_container_creating_pod_answers_waiting_and_deletes_cleanly(tmp_path: Path) -> None:
    """S13: while the kubelet is still creating the container (`pod_start_delay`), the log endpoint answers 400
    `... is waiting to start: ContainerCreating`; deleting such a pod removes it without ever starting it."""
    with kubelet_cluster(tmp_path, pod_start_delay=60) as cluster:
        cluster.create_pod(process_pod("slowstart", "print('never runs')"))
        creating = cluster.wait_pod(
            "slowstart",
            lambda p: (state_of(p).get("waiting") or {}).get("reason") == "ContainerCreating",
            "ContainerCreating",
        )
        assert creating["status"]["phase"] == "Pending" and "podIP" not in creating["status"]
        response = cluster.logs("slowstart")
        assert response.status_code == 400
        assert (
            response.json()["message"] == 'container "main" in pod "slowstart" is waiting to start: ContainerCreating'
        )
        cluster.delete_pod("slowstart")
        cluster.wait_gone("slowstart", timeout=5)
