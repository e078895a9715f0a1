"""The process kubelet (spec S12, "Pods" and "Termination message"; statements 52, 55-58 at pod level).

Aspects covered:
- node registration: a Ready `dops-node` Node that the kubernetes client and kubectl read;
- scheduling: unscheduled pods are bound to the node (`spec.nodeName` + `PodScheduled`); a nodeSelector
  the node does not match → `Unschedulable`; pods for another scheduler or node are left alone;
- status progression Pending(ContainerCreating) → Running → Succeeded/Failed shaped like a real kubelet's
  (conditions in kubelet order, containerStatuses, podIP/hostIP/startTime); every observed state
  deserializes in the kubernetes client (statement 52);
- exit codes: non-zero → `Error`; killed by a signal → 128+n; a command that does not exist →
  `StartError`, exit code 128, the runtime's message naming the executable;
- termination messages: the file behind `terminationMessagePath`, `FallbackToLogsOnError` (statement 57);
- the environment: values, `$(VAR)` expansion, fieldRef, configMapKeyRef/secretKeyRef, resourceFieldRef,
  envFrom, workingDir, `KUBECONFIG` reaching the emulator from inside the pod, no in-cluster variables;
  a missing ConfigMap → `CreateContainerConfigError` until it appears;
- unmapped images → `ErrImagePull`, then `ImagePullBackOff`;
- restarts: OnFailure `restartCount`/`lastState`; Always → `CrashLoopBackOff` back-off;
- init containers run first, in order; a failing one fails a Never pod;
- deletion: SIGTERM to the process group, SIGKILL after `terminationGracePeriodSeconds`, final status,
  removal; pod `activeDeadlineSeconds` → `DeadlineExceeded`;
- simulated mode (annotation and image map): no process, stages drive the status;
- gigantic output: constant memory, bounded log files;
- stopping the emulator kills every child process group and removes the kubelet's work dir.
"""

from __future__ import annotations

import json
import re
import resource
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from tests.builders import configmap, pod
from tests.emulator.kubelet_support import (
    IMAGE,
    SIM_IMAGE,
    KubeletCluster,
    condition,
    container_status,
    deserialize,
    kubelet_cluster,
    pid_alive,
    process_pod,
    python,
    restarts,
    state_of,
    terminated,
    wait_for_file,
)
from tests.helpers import eventually

KUBELET_CONDITIONS = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletCluster]:
    with kubelet_cluster(tmp_path_factory.mktemp("kubelet")) as running:
        yield running


def pids_from_logs(cluster: KubeletCluster, name: str, count: int) -> list[int]:
    text = eventually(
        lambda: cluster.log_so_far(name),
        lambda t: len(re.findall(r"\d+", t.split("\n")[0])) >= count,
        describe=f"{count} pid(s) in the logs of {name}",
    )
    return [int(p) for p in re.findall(r"\d+", text.split("\n")[0])][:count]


# ----------------------------------------------------------------------------------- node and scheduling
def test_node_is_registered_and_ready(cluster: KubeletCluster) -> None:
    """S12: the kubelet registers one Node, `dops-node`, Ready, shaped like a kubelet's registration."""
    node = cluster.request("GET", "/api/v1/nodes/dops-node").json()
    ready = condition(node, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "dops-node"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.35.0"
    assert {"cpu", "memory", "pods"} <= set(node["status"]["allocatable"])
    typed = kubernetes.client.CoreV1Api(cluster.api_client()).read_node("dops-node")
    assert [c.type for c in typed.status.conditions][-1] == "Ready"
    table = cluster.kubectl().run("get", "nodes").stdout
    assert re.search(r"^dops-node\s+Ready\s", table, re.MULTILINE), table


def test_scheduler_binds_pods_it_can_place_and_leaves_the_rest(cluster: KubeletCluster) -> None:
    """S12: pods get `spec.nodeName` (binding adds `PodScheduled=True`); a nodeSelector the node lacks →
    PodScheduled False/Unschedulable; another scheduler's pods and another node's pods are not touched."""
    other = pod("other-sched", command=["true"], image=IMAGE)
    other["spec"]["schedulerName"] = "my-scheduler"
    cluster.create_pod(other)
    elsewhere = pod("elsewhere", command=["true"], image=IMAGE)
    elsewhere["spec"]["nodeName"] = "another-node"
    cluster.create_pod(elsewhere)
    picky = pod("picky", command=["true"], image=IMAGE)
    picky["spec"]["nodeSelector"] = {"disktype": "ssd"}
    cluster.create_pod(picky)
    cluster.create_pod(process_pod("placed", "print('placed')"))

    unschedulable = cluster.wait_pod(
        "picky", lambda p: condition(p, "PodScheduled") is not None, "a PodScheduled condition"
    )
    scheduled = condition(unschedulable, "PodScheduled")
    assert scheduled is not None and (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert "didn't match Pod's node affinity/selector" in scheduled["message"]
    assert not unschedulable["spec"].get("nodeName")

    placed = cluster.wait_phase("placed", "Succeeded")
    assert placed["spec"]["nodeName"] == "dops-node"
    bound = condition(placed, "PodScheduled")
    assert bound is not None and bound["status"] == "True"

    for name in ("other-sched", "elsewhere"):
        untouched = cluster.pod(name)
        assert untouched is not None
        assert untouched["status"] == {"phase": "Pending", "qosClass": "BestEffort"}, untouched["status"]
    assert cluster.pod("other-sched")["spec"].get("nodeName") is None  # type: ignore[index]
    scheduled_events = [e for e in cluster.events_for("placed") if e["reason"] == "Scheduled"]
    assert [e["message"] for e in scheduled_events] == ["Successfully assigned default/placed to dops-node"]


# ----------------------------------------------------------------------------------- lifecycle
def test_pod_goes_pending_running_succeeded_with_kubelet_shaped_status(cluster: KubeletCluster, tmp_path: Path) -> None:
    """S12 / statements 55 (pod half) and 52: Pending with `waiting: ContainerCreating`, then Running
    (`running.startedAt`, ready, started, podIP, all five conditions True), then Succeeded
    (`terminated` Completed, Ready False/PodCompleted); the kubernetes client deserializes each state."""
    gate = tmp_path / "go"
    recorder = cluster.record("life")
    try:
        cluster.create_pod(process_pod("life", wait_for_file(gate) + "print('done')"))
        running = cluster.wait_phase("life", "Running")
        gate.touch()
        done = cluster.wait_phase("life", "Succeeded")
        eventually(recorder.states, lambda s: bool(s) and s[-1].startswith("M:Succeeded"), describe="recorded")
    finally:
        recorder.stop()
    assert recorder.states() == [
        "A:Pending:",
        "M:Pending:",
        "M:Pending:waiting:ContainerCreating",
        "M:Running:running",
        "M:Succeeded:terminated:Completed",
    ]

    status = running["status"]
    assert running["spec"]["nodeName"] == "dops-node"
    assert status["hostIP"] == "127.0.0.1" and status["hostIPs"] == [{"ip": "127.0.0.1"}]
    assert status["podIP"] == "127.0.0.1" and status["podIPs"] == [{"ip": "127.0.0.1"}]
    assert RFC3339.match(status["startTime"])
    assert [c["type"] for c in status["conditions"]] == KUBELET_CONDITIONS
    assert all(c["status"] == "True" for c in status["conditions"])
    main = container_status(running)
    assert (main["ready"], main["started"], main["restartCount"], main["lastState"]) == (True, True, 0, {})
    assert RFC3339.match(main["state"]["running"]["startedAt"])
    assert main["image"] == "docker.io/library/dops-test:latest"
    assert main["imageID"].startswith("docker.io/library/dops-test@sha256:")
    assert re.match(r"^containerd://[0-9a-f]{64}$", main["containerID"])

    end = terminated(done)
    assert (end["exitCode"], end["reason"], end["containerID"]) == (0, "Completed", main["containerID"])
    assert end["startedAt"] == main["state"]["running"]["startedAt"] and RFC3339.match(end["finishedAt"])
    ready = condition(done, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    assert condition(done, "PodReadyToStartContainers")["status"] == "False"  # type: ignore[index]
    assert cluster.log_text("life") == "done\n"

    api_client = cluster.api_client()
    for obj in recorder.objects():
        typed = deserialize(api_client, obj)
        assert typed.metadata.name == "life"
    typed_done = deserialize(api_client, done)
    assert typed_done.status.container_statuses[0].state.terminated.exit_code == 0
    reasons = [e["reason"] for e in sorted(cluster.events_for("life"), key=lambda e: e["metadata"]["resourceVersion"])]
    assert reasons == ["Scheduled", "Pulled", "Created", "Started"]


def test_exit_codes_signals_and_missing_executables(cluster: KubeletCluster) -> None:
    """S12: a non-zero exit is `Error` with its code; death by signal n is 128+n (SIGKILL 137, SIGTERM 143);
    a command that does not exist terminates with `StartError`, exit code 128 and the runtime's message."""
    cluster.create_pod(process_pod("exit3", "import sys; print('hi'); sys.exit(3)"))
    cluster.create_pod(process_pod("sigkill", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    cluster.create_pod(process_pod("sigterm", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"))
    cluster.create_pod(pod("notfound", command=["dops-no-such-binary", "--flag"], image=IMAGE))
    cluster.create_pod(pod("nopath", command=["/nonexistent/dops-tool"], image=IMAGE))

    expected = {"exit3": (3, "Error"), "sigkill": (137, "Error"), "sigterm": (143, "Error")}
    for name, (code, reason) in expected.items():
        end = terminated(cluster.wait_phase(name, "Failed"))
        assert (end["exitCode"], end["reason"]) == (code, reason), name
        assert "message" not in end

    missing = cluster.wait_phase("notfound", "Failed")
    end = terminated(missing)
    assert (end["exitCode"], end["reason"], end["startedAt"]) == (128, "StartError", "1970-01-01T00:00:00Z")
    assert 'exec: "dops-no-such-binary": executable file not found in $PATH' in end["message"]
    assert end["message"].startswith("failed to create containerd task: ")
    deserialize(cluster.api_client(), missing)
    failed = [e["message"] for e in cluster.events_for("notfound") if e["reason"] == "Failed"]
    assert failed == [f"Error: {end['message']}"]

    nopath = terminated(cluster.wait_phase("nopath", "Failed"))
    assert 'exec: "/nonexistent/dops-tool": stat /nonexistent/dops-tool: no such file or directory' in nopath["message"]


def test_termination_messages(cluster: KubeletCluster) -> None:
    """S12 / statement 57: what the process writes to its termination-message file (the path in
    $DOPS_TERMINATION_MESSAGE_PATH stands for `terminationMessagePath`) becomes `terminated.message`,
    at most 4096 bytes; `FallbackToLogsOnError` uses the last 80 log lines when the file is empty and the
    container failed; with `File` a failure without a file has no message."""
    write = "import os; open(os.environ['DOPS_TERMINATION_MESSAGE_PATH'], 'w').write({text!r})\n"
    lines = "for i in range(1, 101):\n    print(f'line {i}')\n"
    cluster.create_pod(process_pod("msg-file", write.format(text="all good\n")))
    cluster.create_pod(
        process_pod("msg-fallback", lines + "raise SystemExit(2)", terminationMessagePolicy="FallbackToLogsOnError")
    )
    cluster.create_pod(process_pod("msg-policy-file", lines + "raise SystemExit(2)"))
    cluster.create_pod(
        process_pod(
            "msg-file-wins",
            lines + write.format(text="from the file") + "raise SystemExit(1)",
            terminationMessagePolicy="FallbackToLogsOnError",
        )
    )
    cluster.create_pod(process_pod("msg-long", write.format(text="x" * 10_000)))

    assert terminated(cluster.wait_phase("msg-file", "Succeeded"))["message"] == "all good\n"
    fallback = terminated(cluster.wait_phase("msg-fallback", "Failed"))
    assert fallback["message"].splitlines() == [f"line {i}" for i in range(21, 101)]
    assert "message" not in terminated(cluster.wait_phase("msg-policy-file", "Failed"))
    assert terminated(cluster.wait_phase("msg-file-wins", "Failed"))["message"] == "from the file"
    assert terminated(cluster.wait_phase("msg-long", "Succeeded"))["message"] == "x" * 4096


# ----------------------------------------------------------------------------------- environment
def test_container_environment_working_dir_and_in_pod_kubeconfig(cluster: KubeletCluster, tmp_path: Path) -> None:
    """S12: env values with `$(VAR)` expansion, valueFrom fieldRef/configMapKeyRef/secretKeyRef/resourceFieldRef,
    envFrom with a prefix, workingDir, HOSTNAME; KUBECONFIG points at the emulator so an in-pod kubernetes client
    reads the pod itself; no KUBERNETES_SERVICE_* variables reach the pod (it must not think it is in-cluster)."""
    cluster.create("/api/v1/namespaces/default/configmaps", configmap("envcm", color="blue", size="3"))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "envsecret"}, "stringData": {"token": "s3"}}
    cluster.create("/api/v1/namespaces/default/secrets", secret)

    def field(path: str) -> dict[str, object]:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    env = [
        {"name": "PLAIN", "value": "hello"},
        {"name": "EXPANDED", "value": "$(PLAIN)-world-$(MISSING)-$$(PLAIN)"},
        {"name": "POD_NAME", **field("metadata.name")},
        {"name": "POD_NS", **field("metadata.namespace")},
        {"name": "POD_UID", **field("metadata.uid")},
        {"name": "NODE", **field("spec.nodeName")},
        {"name": "SA", **field("spec.serviceAccountName")},
        {"name": "POD_IP", **field("status.podIP")},
        {"name": "APP", **field("metadata.labels['app']")},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "envcm", "key": "color"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "envsecret", "key": "token"}}},
        {"name": "ABSENT", "valueFrom": {"configMapKeyRef": {"name": "envcm", "key": "nope", "optional": True}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
    ]
    script = """
        import json, os
        from kubernetes import client, config
        config.load_kube_config()
        me = client.CoreV1Api().read_namespaced_pod(os.environ["POD_NAME"], os.environ["POD_NS"])
        print(json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "phase": me.status.phase}))
    """
    body = process_pod(
        "envpod",
        script,
        env=env,
        envFrom=[{"configMapRef": {"name": "envcm"}, "prefix": "CM_"}],
        workingDir=str(tmp_path),
        resources={"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}},
    )
    body["metadata"]["labels"] = {"app": "envtest"}
    created = cluster.create_pod(body)
    done = cluster.wait_phase("envpod", "Succeeded", timeout=30)
    report = json.loads(cluster.log_text("envpod"))
    seen = report["env"]
    assert report["cwd"] == str(tmp_path)
    assert report["phase"] == "Running"  # read from inside the pod through KUBECONFIG
    assert {k: seen.get(k) for k in ("PLAIN", "EXPANDED", "POD_NAME", "POD_NS", "NODE", "SA", "APP")} == {
        "PLAIN": "hello",
        "EXPANDED": "hello-world-$(MISSING)-$(PLAIN)",
        "POD_NAME": "envpod",
        "POD_NS": "default",
        "NODE": "dops-node",
        "SA": "default",
        "APP": "envtest",
    }
    assert seen["POD_UID"] == created["metadata"]["uid"]
    assert seen["POD_IP"] == done["status"]["podIP"]
    assert (seen["COLOR"], seen["TOKEN"], seen["CM_color"], seen["CM_size"]) == ("blue", "s3", "blue", "3")
    assert (seen["MEM"], seen["CPU"]) == ("64", "250")
    assert "ABSENT" not in seen
    assert seen["HOSTNAME"] == "envpod"
    assert seen["DOPS_EXTRA"] == "yes"
    assert not {k for k in seen if k.startswith("KUBERNETES_")}
    kubeconfig = Path(seen["KUBECONFIG"]).read_text()
    assert f"server: {cluster.url}" in kubeconfig and "namespace: default" in kubeconfig
    assert Path(seen["DOPS_TERMINATION_MESSAGE_PATH"]).name.endswith(".termination-log")
    main = container_status(done)
    assert main["resources"] == {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}}


def test_missing_config_map_waits_with_create_container_config_error(cluster: KubeletCluster) -> None:
    """S12: a container whose env needs a missing ConfigMap (or key) waits in `CreateContainerConfigError`
    with the kubelet's message, the pod stays Pending, and it starts once the ConfigMap appears."""
    ref = {"name": "VALUE", "valueFrom": {"configMapKeyRef": {"name": "late-cm", "key": "k"}}}
    cluster.create_pod(process_pod("cfgwait", "import os; print(os.environ['VALUE'])", env=[ref]))
    cluster.create("/api/v1/namespaces/default/configmaps", configmap("keyless-cm", other="1"))
    keyref = {"name": "VALUE", "valueFrom": {"configMapKeyRef": {"name": "keyless-cm", "key": "k"}}}
    cluster.create_pod(process_pod("cfgkey", "print('never')", env=[keyref]))

    def waiting(name: str) -> dict[str, str]:
        found = cluster.wait_pod(
            name,
            lambda p: (state_of(p).get("waiting") or {}).get("reason") == "CreateContainerConfigError",
            "CreateContainerConfigError",
        )
        assert found["status"]["phase"] == "Pending"
        state: dict[str, str] = container_status(found)["state"]["waiting"]
        return state

    assert waiting("cfgwait")["message"] == 'configmap "late-cm" not found'
    assert waiting("cfgkey")["message"] == "couldn't find key k in ConfigMap default/keyless-cm"
    cluster.create("/api/v1/namespaces/default/configmaps", configmap("late-cm", k="arrived"))
    cluster.wait_phase("cfgwait", "Succeeded")
    assert cluster.log_text("cfgwait") == "arrived\n"


def test_unmapped_images_fail_to_pull(cluster: KubeletCluster) -> None:
    """S12 ("Images are not pulled"): an image the image map does not cover waits in `ErrImagePull`, then
    `ImagePullBackOff` (and retries), with a message naming the image; the pod stays Pending."""
    image = "registry.example.com/team/app:2.0"
    recorder = cluster.record("pullme")
    try:
        cluster.create_pod(pod("pullme", command=["app"], image=image))
        eventually(
            recorder.states,
            lambda s: (
                s[-3:]
                == [
                    "M:Pending:waiting:ErrImagePull",
                    "M:Pending:waiting:ImagePullBackOff",
                    "M:Pending:waiting:ErrImagePull",
                ]
            ),
            describe="ErrImagePull → ImagePullBackOff → ErrImagePull (retry)",
        )
    finally:
        recorder.stop()
    objects = recorder.objects()
    pull = next(
        container_status(o)["state"]["waiting"] for o in objects if "ErrImagePull" in json.dumps(o.get("status"))
    )
    assert pull["message"].startswith(f'failed to pull and unpack image "{image}"')
    backoff = next(
        container_status(o)["state"]["waiting"] for o in objects if "ImagePullBackOff" in json.dumps(o.get("status"))
    )
    assert backoff["message"] == f'Back-off pulling image "{image}": ErrImagePull: {pull["message"]}'
    warnings = {e["message"] for e in cluster.events_for("pullme") if e["type"] == "Warning"}
    assert "Error: ErrImagePull" in warnings and "Error: ImagePullBackOff" in warnings
    cluster.delete_pod("pullme")
    cluster.wait_gone("pullme")


# ----------------------------------------------------------------------------------- restarts
def test_on_failure_restarts_with_restart_count_and_last_state(cluster: KubeletCluster, tmp_path: Path) -> None:
    """S12: restartPolicy OnFailure restarts a failed container: `restartCount` grows, `lastState.terminated`
    keeps the previous run, the back-off shows as `CrashLoopBackOff` (first restart at once, then doubling)."""
    counter = tmp_path / "count"
    script = f"""
        import pathlib, sys
        counter = pathlib.Path({str(counter)!r})
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        print(f"attempt {{n}}")
        sys.exit(0 if n >= 2 else 1)
    """
    recorder = cluster.record("onfail")
    try:
        created = cluster.create_pod(process_pod("onfail", script, restart="OnFailure"))
        done = cluster.wait_phase("onfail", "Succeeded")
    finally:
        recorder.stop()
    main = container_status(done)
    assert main["restartCount"] == 2
    assert (main["state"]["terminated"]["exitCode"], main["state"]["terminated"]["reason"]) == (0, "Completed")
    last = main["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    assert last["containerID"] != main["containerID"]
    backoffs = [
        container_status(o)["state"]["waiting"]["message"]
        for o in recorder.objects()
        if "CrashLoopBackOff" in json.dumps(o.get("status"))
    ]
    uid = created["metadata"]["uid"]
    assert backoffs and set(backoffs) == {f"back-off 300ms restarting failed container=main pod=onfail_default({uid})"}
    phases = {(o.get("status") or {}).get("phase") for o in recorder.objects()}
    assert "Failed" not in phases  # OnFailure never reports the pod as failed while it restarts
    assert cluster.log_text("onfail") == "attempt 2\n"


def test_always_restarts_even_after_success_into_crash_loop_back_off(cluster: KubeletCluster) -> None:
    """S12: restartPolicy Always restarts a container that exits 0 too; the pod stays Running while the
    container cycles through `CrashLoopBackOff` with `lastState.terminated` reason Completed."""
    cluster.create_pod(process_pod("crashloop", "print('tick')", restart="Always"))
    looping = cluster.wait_pod(
        "crashloop",
        lambda p: restarts(p) >= 2 and (state_of(p).get("waiting") or {}).get("reason") == "CrashLoopBackOff",
        "two restarts and CrashLoopBackOff",
    )
    assert looping["status"]["phase"] == "Running"
    assert container_status(looping)["lastState"]["terminated"]["reason"] == "Completed"
    backoff_events = [e for e in cluster.events_for("crashloop") if e["reason"] == "BackOff"]
    assert backoff_events and backoff_events[0]["type"] == "Warning"
    deserialize(cluster.api_client(), looping)
    cluster.delete_pod("crashloop")
    cluster.wait_gone("crashloop")


def test_init_containers_run_first_in_order(cluster: KubeletCluster, tmp_path: Path) -> None:
    """S12: init containers run one after the other before the app containers (which wait in
    `PodInitializing`); a failing init container fails a restartPolicy Never pod."""
    first, second = tmp_path / "first", tmp_path / "second"
    body = process_pod("withinit", f"print(open({str(second)!r}).read())")
    body["spec"]["initContainers"] = [
        {"name": "init1", "image": IMAGE, "command": python(f"open({str(first)!r}, 'w').write('1')")},
        {
            "name": "init2",
            "image": IMAGE,
            "command": python(
                f"import pathlib; pathlib.Path({str(second)!r}).write_text(open({str(first)!r}).read() + '2')"
            ),
        },
    ]
    body["spec"]["containers"].append({"name": "side", "image": IMAGE, "command": python("print('side')")})
    recorder = cluster.record("withinit")
    try:
        cluster.create_pod(body)
        done = cluster.wait_phase("withinit", "Succeeded")
    finally:
        recorder.stop()
    assert [s["name"] for s in done["status"]["initContainerStatuses"]] == ["init1", "init2"]
    assert all(s["state"]["terminated"]["reason"] == "Completed" for s in done["status"]["initContainerStatuses"])
    assert [s["name"] for s in done["status"]["containerStatuses"]] == ["main", "side"]
    assert cluster.log_text("withinit", container="main") == "12\n"
    assert "M:Pending:waiting:PodInitializing" in recorder.states()
    assert condition(done, "Initialized")["status"] == "True"  # type: ignore[index]

    bad = process_pod("badinit", "print('never')")
    bad["spec"]["initContainers"] = [{"name": "init", "image": IMAGE, "command": python("raise SystemExit(4)")}]
    cluster.create_pod(bad)
    failed = cluster.wait_phase("badinit", "Failed")
    assert terminated(failed, "init")["exitCode"] == 4
    assert container_status(failed)["state"]["waiting"]["reason"] == "PodInitializing"
    initialized = condition(failed, "Initialized")
    assert initialized is not None and (initialized["status"], initialized["reason"]) == (
        "False",
        "ContainersNotInitialized",
    )


# ----------------------------------------------------------------------------------- termination
def test_delete_sends_sigterm_then_sigkill_after_the_grace_period(cluster: KubeletCluster, tmp_path: Path) -> None:
    """S12 / S7: DELETE of a running pod sets deletionTimestamp + deletionGracePeriodSeconds; the kubelet
    SIGTERMs the container's process group, SIGKILLs it after `terminationGracePeriodSeconds`, reports the
    final state (137, Error) and removes the pod. Every process of the group is gone."""
    marker = tmp_path / "sigterm-seen"
    script = f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, lambda *a: open({str(marker)!r}, "w").write("yes"))
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        print(os.getpid(), child.pid, flush=True)
        while True:
            time.sleep(0.05)
    """
    body = process_pod("stubborn", script)
    body["spec"]["terminationGracePeriodSeconds"] = 1
    cluster.create_pod(body)
    cluster.wait_phase("stubborn", "Running")
    pids = pids_from_logs(cluster, "stubborn", 2)
    assert all(pid_alive(p) for p in pids)
    recorder = cluster.record("stubborn")
    try:
        started = time.monotonic()
        deleted = cluster.delete_pod("stubborn")
        assert deleted["metadata"]["deletionGracePeriodSeconds"] == 1 and deleted["metadata"]["deletionTimestamp"]
        still = cluster.pod("stubborn")
        assert still is not None and still["metadata"].get("deletionTimestamp"), "graceful deletion keeps the pod"
        cluster.wait_gone("stubborn")
        elapsed = time.monotonic() - started
        eventually(recorder.states, lambda s: s and s[-1].startswith("D:"), describe="DELETED recorded")
    finally:
        recorder.stop()
    assert marker.read_text() == "yes"
    assert 0.9 <= elapsed < 5, elapsed
    eventually(lambda: [p for p in pids if pid_alive(p)], lambda alive: not alive, describe="the process group gone")
    final = recorder.objects()[-1]
    end = terminated(final)
    assert (final["status"]["phase"], end["exitCode"], end["reason"]) == ("Failed", 137, "Error")
    killing = [e["message"] for e in cluster.events_for("stubborn") if e["reason"] == "Killing"]
    assert killing == ["Stopping container main"]


def test_delete_of_a_process_that_exits_on_sigterm_is_quick_and_reports_its_exit(cluster: KubeletCluster) -> None:
    """S12: a container that exits cleanly on SIGTERM ends the graceful deletion at once (well before the
    default 30 s grace period); its final status is what the process reported (exit 0 → Succeeded)."""
    script = """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
    """
    cluster.create_pod(process_pod("polite", script))
    eventually(lambda: cluster.log_so_far("polite"), lambda t: t == "ready\n", describe="polite is ready")
    recorder = cluster.record("polite")
    try:
        started = time.monotonic()
        cluster.delete_pod("polite")
        cluster.wait_gone("polite")
        assert time.monotonic() - started < 5
        eventually(recorder.states, lambda s: s and s[-1].startswith("D:"), describe="DELETED recorded")
    finally:
        recorder.stop()
    final = recorder.objects()[-1]
    assert final["status"]["phase"] == "Succeeded" and terminated(final)["exitCode"] == 0


def test_pod_active_deadline_seconds_fails_the_pod(cluster: KubeletCluster) -> None:
    """S12 (pod `activeDeadlineSeconds`): the kubelet kills the containers and fails the pod with reason
    `DeadlineExceeded` and the kubelet's message; the process is gone."""
    body = process_pod("deadline", "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(300)")
    body["spec"]["activeDeadlineSeconds"] = 1
    cluster.create_pod(body)
    (pid,) = pids_from_logs(cluster, "deadline", 1)
    failed = cluster.wait_phase("deadline", "Failed", timeout=10)
    assert failed["status"]["reason"] == "DeadlineExceeded"
    assert failed["status"]["message"] == "Pod was active on the node longer than the specified deadline"
    assert terminated(failed)["exitCode"] == 143
    assert not pid_alive(pid)
    deserialize(cluster.api_client(), failed)


# ----------------------------------------------------------------------------------- simulated mode
def test_simulated_pods_run_no_process(cluster: KubeletCluster) -> None:
    """S12 (simulated mode): a pod annotated `dops.emulator/simulate: "true"` (any image) or whose image the
    map marks simulated goes through the same states with no process; annotations set the exit code,
    message, duration and log text; an Always pod runs until deleted."""

    def sim(name: str, image: str = "busybox:1.36", restart: str = "Never", **annotations: str) -> dict[str, object]:
        body = pod(name, command=["does-not-matter"], image=image)
        body["spec"]["restartPolicy"] = restart
        body["metadata"]["annotations"] = {"dops.emulator/simulate": "true", **annotations}
        return body

    cluster.create_pod(sim("sim-ok", **{"dops.emulator/simulate-logs": "simulated hello"}))
    cluster.create_pod(
        sim("sim-fail", **{"dops.emulator/simulate-exit-code": "3", "dops.emulator/simulate-message": "boom"})
    )
    forever = pod("sim-forever", command=["x"], image=SIM_IMAGE)
    forever["spec"]["restartPolicy"] = "Always"
    cluster.create_pod(forever)

    ok = cluster.wait_phase("sim-ok", "Succeeded")
    assert terminated(ok)["reason"] == "Completed"
    assert re.match(r"^10\.244\.\d+\.\d+$", ok["status"]["podIP"])
    assert cluster.log_text("sim-ok") == "simulated hello\n"
    assert cluster.events_for("sim-ok") == []  # simulated pods stay cheap: no Events
    fail = terminated(cluster.wait_phase("sim-fail", "Failed"))
    assert (fail["exitCode"], fail["reason"], fail["message"]) == (3, "Error", "boom")
    running = cluster.wait_phase("sim-forever", "Running")
    assert container_status(running)["ready"] is True
    for obj in (ok, running):
        deserialize(cluster.api_client(), obj)
    cluster.delete_pod("sim-forever")
    cluster.wait_gone("sim-forever")


# ----------------------------------------------------------------------------------- resource safety
def test_gigantic_output_streams_to_bounded_log_files(tmp_path: Path) -> None:
    """S12 (bad input): a process printing ~100 MB neither grows the emulator's memory nor its disk use
    beyond the log rotation limits (containerLogMaxSize/MaxFiles); a follower streams through the rotations
    and is released at the end; the log endpoint still serves the tail."""
    gate = tmp_path / "gate"
    script = wait_for_file(gate) + textwrap.dedent(
        """
        import sys
        block = (b"y" * 1023 + b"\\n") * 1024
        for _ in range(100):
            sys.stdout.buffer.write(block)
        sys.stdout.buffer.write(b"z" * 200_000)
        sys.stdout.buffer.write(b"\\nlast line\\n")
        """
    )
    with kubelet_cluster(tmp_path, log_max_bytes=1024 * 1024, log_max_files=2) as cluster:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cluster.create_pod(process_pod("chatty", script))
        cluster.wait_phase("chatty", "Running")
        follow = cluster.logs("chatty", follow="true", stream=True, timeout=60)
        received = {"bytes": 0, "tail": b""}

        def drain() -> None:
            for chunk in follow.iter_content(64 * 1024):
                received["bytes"] += len(chunk)  # type: ignore[operator]
                received["tail"] = (received["tail"] + chunk)[-64:]  # type: ignore[operator]

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        gate.touch()
        cluster.wait_phase("chatty", "Succeeded", timeout=60)
        reader.join(30)
        assert not reader.is_alive(), "the follower was not released when the container exited"
        assert received["tail"].endswith(b"z\nlast line\n")  # type: ignore[union-attr]
        assert received["bytes"] > 1024 * 1024  # type: ignore[operator]
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert grown_kib < 60 * 1024, f"peak memory grew by {grown_kib} KiB"
        kubelet = cluster.server.controllers["kubelet"]
        assert kubelet.work_dir is not None  # type: ignore[attr-defined]
        files = list((kubelet.work_dir / "pods").rglob("*.log*"))  # type: ignore[attr-defined]
        assert sum(f.stat().st_size for f in files) < 3 * 1024 * 1024, [(f.name, f.stat().st_size) for f in files]
        # A 200,000-byte line is stored as 16 KiB partial records (12 × P + 1 × F), as containerd does;
        # tailLines counts records, as the kubelet does, and the endpoint joins partials back together.
        assert cluster.log_text("chatty", tailLines=2) == "z" * (200_000 % 16_384) + "\nlast line\n"
        assert cluster.log_text("chatty", tailLines=14) == "z" * 200_000 + "\nlast line\n"


def test_stopping_the_emulator_kills_every_child_process(tmp_path: Path) -> None:
    """S12 (bad input): stopping the emulator leaves no child process behind — not the container's main
    process, not what it spawned in its group, not one that ignores SIGTERM — and removes the work dir."""
    spawner = """
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        print(os.getpid(), child.pid, flush=True)
        time.sleep(300)
    """
    stubborn = """
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(os.getpid(), flush=True)
        while True:
            time.sleep(0.05)
    """
    with kubelet_cluster(tmp_path) as cluster:
        cluster.create_pod(process_pod("spawner", spawner))
        cluster.create_pod(process_pod("ignorer", stubborn, restart="Always"))
        pids = pids_from_logs(cluster, "spawner", 2) + pids_from_logs(cluster, "ignorer", 1)
        assert all(pid_alive(p) for p in pids)
        work_dir = cluster.server.controllers["kubelet"].work_dir  # type: ignore[attr-defined]
        assert work_dir is not None and work_dir.exists()
    alive = [p for p in pids if pid_alive(p)]
    assert alive == [], f"left behind: {alive}"
    assert not work_dir.exists()
