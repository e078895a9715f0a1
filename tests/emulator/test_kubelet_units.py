"""Unit tests of the kubelet's pure pieces (spec S12/S13 rules, without a server).

Aspects covered:
- the image map: pattern order, matching the normalised reference, rule validation, default mode;
- image reference normalisation as a runtime reports it;
- `$(VAR)` expansion (defined, undefined, `$$` escape) and resource quantities;
- `getPhase` for the restart policies, init containers and terminal pods;
- Go duration formatting of back-off messages;
- CRI log records: partial lines, tail across rotated files, rotation bounds.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from dops.emulator.controllers.kubelet.config import MISSING, PROCESS, SIMULATED, ImageMap, normalize_image
from dops.emulator.controllers.kubelet.env import expand, parse_quantity
from dops.emulator.controllers.kubelet.logs import PARTIAL_MAX, LogWriter
from dops.emulator.controllers.kubelet.status import get_phase, go_duration

JSON = dict[str, Any]


def test_image_map_first_match_wins_and_matches_normalised_names() -> None:
    """S12 (image map): the first matching pattern decides, against the image as written or normalised;
    unmatched images get the default mode; a rule may carry a default command, workingDir and env."""
    images = ImageMap(
        {
            "ghcr.io/acme/dops:*": "process",
            "docker.io/library/busybox:*": {"mode": "simulated"},
            "python:3.*": {"mode": "process", "command": ["/usr/bin/python3"], "env": {"A": "1"}},
        },
        MISSING,
    )
    assert images.resolve("ghcr.io/acme/dops:1.2").mode == PROCESS
    assert images.resolve("busybox").mode == SIMULATED  # matches docker.io/library/busybox:latest
    rule = images.resolve("python:3.12")
    assert (rule.mode, rule.command, rule.env) == (PROCESS, ("/usr/bin/python3",), (("A", "1"),))
    assert images.resolve("nginx:1.27").mode == MISSING


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"x": "pulled"}, "mode must be one of process, simulated, missing"),
        ({"x": {"mode": "process", "cmd": ["a"]}}, "unknown keys ['cmd']"),
        ({"x": {"command": "python"}}, "command must be a list of strings"),
        ({"x": 3}, "expected a mode string or a mapping"),
    ],
)
def test_image_map_rejects_malformed_rules(rules: JSON, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ImageMap(rules, MISSING)


@pytest.mark.parametrize(
    ("image", "reference"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("acme/tool:2", "docker.io/acme/tool:2"),
        ("ghcr.io/acme/dops", "ghcr.io/acme/dops:latest"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
        ("busybox@sha256:abc", "docker.io/library/busybox@sha256:abc"),
    ],
)
def test_normalize_image(image: str, reference: str) -> None:
    assert normalize_image(image) == reference


def test_variable_expansion_and_quantities() -> None:
    """S12 (env): `$(VAR)` expands defined names, keeps undefined ones, `$$` escapes; quantities parse exactly."""
    env = {"A": "x", "B": "y"}.get
    assert expand("$(A)-$(B)-$(C)-$$(A)-$x-$", env) == "x-y-$(C)-$(A)-$x-$"
    assert expand("$(A", env) == "$(A"
    assert parse_quantity("250m") == Fraction(1, 4)
    assert parse_quantity("64Mi") == 64 * 2**20
    assert parse_quantity("1e3") == 1000
    assert parse_quantity("2") == 2
    with pytest.raises(ValueError):
        parse_quantity("lots")


def _status(state: str, exit_code: int = 0, last: bool = False) -> JSON:
    states = {
        "running": {"running": {"startedAt": "t"}},
        "terminated": {"terminated": {"exitCode": exit_code}},
        "waiting": {"waiting": {"reason": "CrashLoopBackOff"}},
    }
    out: JSON = {"name": "c", "state": states[state], "lastState": {}}
    if last:
        out["lastState"] = {"terminated": {"exitCode": 1}}
    return out


@pytest.mark.parametrize(
    ("policy", "statuses", "terminal", "phase"),
    [
        ("Never", [_status("terminated", 0)], False, "Succeeded"),
        ("Never", [_status("terminated", 3)], False, "Failed"),
        ("OnFailure", [_status("waiting", last=True)], False, "Running"),
        ("Always", [_status("terminated", 0)], False, "Running"),
        ("Never", [_status("running"), _status("waiting")], False, "Pending"),
        ("Never", [_status("running"), _status("terminated", 1)], False, "Running"),
        ("Always", [_status("terminated", 143)], True, "Failed"),
        ("Always", [_status("terminated", 0)], True, "Succeeded"),
    ],
)
def test_get_phase(policy: str, statuses: list[JSON], terminal: bool, phase: str) -> None:
    """S12: the pod phase as the kubelet's getPhase derives it from the container statuses."""
    assert get_phase({"restartPolicy": policy}, [], statuses, terminal) == phase


def test_get_phase_with_init_containers() -> None:
    waiting = [_status("waiting")]
    assert get_phase({"restartPolicy": "Never"}, [_status("running")], waiting, False) == "Pending"
    assert get_phase({"restartPolicy": "Never"}, [_status("terminated", 2)], waiting, False) == "Failed"
    assert get_phase({"restartPolicy": "OnFailure"}, [_status("waiting", last=True)], waiting, False) == "Pending"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.3, "300ms"), (1.5, "1.5s"), (10, "10s"), (80, "1m20s"), (300, "5m0s"), (3600, "1h0m0s")]
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_cri_records_partial_lines_tail_and_rotation(tmp_path: Path) -> None:
    """S13: lines become CRI records (long ones split into 16 KiB partials); rotation keeps at most
    `max_files` files of about `max_bytes`; the tail reads across rotated files."""

    async def scenario() -> None:
        writer = LogWriter(tmp_path / "0.log", max_bytes=64 * 1024, max_files=3)
        for index in range(2000):
            writer.write(b"stdout", f"line {index}\n".encode())
        writer.write(b"stderr", b"a" * (PARTIAL_MAX + 10))
        writer.write(b"stderr", b"\n")
        writer.write(b"stdout", b"no newline at the end")
        writer.finish()
        files = writer.files()
        assert 1 < len(files) <= 3
        assert all(f.stat().st_size < 64 * 1024 + PARTIAL_MAX for f in files)
        records = (tmp_path / "0.log").read_bytes().splitlines()
        tags = [r.split(b" ", 3)[1:3] for r in records[-3:]]
        assert tags == [[b"stderr", b"P"], [b"stderr", b"F"], [b"stdout", b"F"]]
        assert writer.tail_text(1, 4096) == "no newline at the end\n"
        # tailLines counts records: the long stderr line is two of them (P + F).
        tail = writer.tail_text(4, 100_000).splitlines()
        assert tail == ["line 1999", "a" * (PARTIAL_MAX + 10), "no newline at the end"]
        assert writer.tail_text(80, 2048) == writer.tail_text(80, 100_000)[-2048:]

    asyncio.run(scenario())
