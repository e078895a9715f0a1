"""The real-plane e2e cluster's helpers (tests/e2e/realplane.py) and the test image's entrypoint on the node agent
(tests/e2e/entrypoint.py), without a control plane.

Covered:
- the image-map rule of `dops:e2e`: process mode, the entrypoint run by this interpreter, the image's ENV (the
  Dockerfile's Python settings, PYTHONPATH with this checkout's operator/, a loopback bind address, the sandbox's
  mounts and ports); the agent configuration parses with the node agent's own image-map parser and resolves the
  image to that rule, anything else to `missing`;
- the log PersistentVolume: hostPath, no storage class, the chart's PVC size and access mode;
- the controller-manager flags add the PersistentVolume binder and protection controllers to the launcher's list;
- the entrypoint: mount paths (and paths under them) in the environment become host paths (the longest mount
  wins, other values are untouched), named non-zero port variables get free ports, its own variables are not passed
  on; it execs this checkout's `python -m dops` with the container's args.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dops.emulator.controllers.kubelet.config import MISSING, PROCESS, KubeletOptions
from tests.e2e import entrypoint, realplane
from tests.e2e.common import IMAGE
from tests.e2e.entrypoint import MOUNTS_ENV, PORTS_ENV, mapped_path, sandbox_env
from tests.e2e.realplane import ARCHIVE_MOUNT, EXTRA_CONTROLLERS, agent_config, image_rule, persistent_volume
from tests.realcluster.launcher import CONTROLLERS

REPO = Path(__file__).resolve().parents[2]


def test_the_image_rule_runs_this_checkouts_dops_through_the_entrypoint(tmp_path: Path) -> None:
    rule = image_rule(tmp_path / "logs")
    assert rule["mode"] == PROCESS
    assert rule["command"] == [sys.executable, "-m", "tests.e2e.entrypoint"]
    env = rule["env"]
    assert env["PYTHONPATH"].split(":") == [str(REPO / "operator"), str(REPO)]
    assert env["PYTHONUNBUFFERED"] == "1" and env["PYTHONDONTWRITEBYTECODE"] == "1"  # the Dockerfile's ENV
    assert env["DOPS_BIND_ADDRESS"] == "127.0.0.1"
    assert json.loads(env[MOUNTS_ENV]) == {ARCHIVE_MOUNT: str(tmp_path / "logs")}
    assert env[PORTS_ENV] == "DOPS_METRICS_PORT,DOPS_HEALTH_PORT,DOPS_UI_PORT"


def test_the_agent_configuration_parses_with_the_node_agents_image_map(tmp_path: Path) -> None:
    config = agent_config([IMAGE], tmp_path)
    options = KubeletOptions(**config)
    rules = options.image_rules()
    loaded = rules.resolve(IMAGE)
    assert loaded.mode == PROCESS and loaded.command == (sys.executable, "-m", "tests.e2e.entrypoint")
    assert dict(loaded.env)["DOPS_BIND_ADDRESS"] == "127.0.0.1"
    assert rules.resolve("ghcr.io/dops-dev/dops:0.1.0").mode == MISSING  # nothing else is "pulled"


def test_the_log_volume_is_a_classless_host_path_the_charts_claim_binds_to(tmp_path: Path) -> None:
    volume = persistent_volume("logs", tmp_path)
    spec = volume["spec"]
    assert volume["metadata"] == {"name": "logs"}
    assert spec["capacity"] == {"storage": "1Gi"} and spec["accessModes"] == ["ReadWriteOnce"]  # values.yaml
    assert spec["storageClassName"] == "" and spec["hostPath"]["path"] == str(tmp_path)


def test_the_persistent_volume_controllers_are_added_to_the_launchers() -> None:
    assert not set(EXTRA_CONTROLLERS) & set(CONTROLLERS)
    assert set(EXTRA_CONTROLLERS) == {
        "persistentvolume-binder-controller",
        "persistentvolumeclaim-protection-controller",
        "persistentvolume-protection-controller",
    }
    assert realplane.NODE_NAME and realplane.LOG_VOLUME


def test_mount_paths_become_host_paths() -> None:
    mounts = {"/var/lib/dops/logs": "/host/pv", "/var/lib/dops": "/host/other/"}
    assert mapped_path("/var/lib/dops/logs", mounts) == "/host/pv"
    assert mapped_path("/var/lib/dops/logs/ns/op.log", mounts) == "/host/pv/ns/op.log"
    assert mapped_path("/var/lib/dops/cache", mounts) == "/host/other/cache"  # the longest mount wins
    assert mapped_path("/var/lib/dops-other", mounts) == "/var/lib/dops-other"
    assert mapped_path("s3://bucket/var/lib/dops/logs", mounts) == "s3://bucket/var/lib/dops/logs"
    assert mapped_path("/var/lib/dops/logs", {}) == "/var/lib/dops/logs"


def test_the_sandbox_environment_maps_mounts_and_frees_ports() -> None:
    ports = iter([41001, 41002])
    env = {
        "DOPS_LOG_ARCHIVE": "/var/lib/dops/logs",
        "DOPS_METRICS_PORT": "8080",
        "DOPS_HEALTH_PORT": "0",  # off stays off
        "OTHER_PORT": "8081",  # not named: untouched
        "PATH": "/usr/bin",
        MOUNTS_ENV: json.dumps({"/var/lib/dops/logs": "/tmp/pv"}),
        PORTS_ENV: "DOPS_METRICS_PORT, DOPS_HEALTH_PORT,MISSING_PORT",
    }
    assert sandbox_env(env, port=lambda: next(ports)) == {
        "DOPS_LOG_ARCHIVE": "/tmp/pv",
        "DOPS_METRICS_PORT": "41001",
        "DOPS_HEALTH_PORT": "0",
        "OTHER_PORT": "8081",
        "PATH": "/usr/bin",
    }
    assert sandbox_env({"A": "b"}) == {"A": "b"}
    assert 0 < entrypoint.free_port() < 65536


def test_the_entrypoint_execs_this_checkouts_dops_with_the_containers_args(tmp_path: Path) -> None:
    assert entrypoint.command(["worker", "run", "ns/op"]) == [sys.executable, "-m", "dops", "worker", "run", "ns/op"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO / 'operator'}:{REPO}", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.e2e.entrypoint", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, MOUNTS_ENV: "{}", PORTS_ENV: ""},
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: dops" in result.stdout, result.stdout
