"""issue 14 #6 on the real control plane: without the dops CRDs every command says so in the same one line.

A real kube-apiserver answers a request for an API group it does not serve with a bare `404 page not found` (plain
text, no Status object), unlike the embedded plane's Status: `get`, `list`, `logs` (and `-f`), `watch`, `wait`,
`submit` and `ui` must still print the one line `dops list` prints ("the dops CRDs are not installed ..."), exit 3.
The embedded twin is tests/integration/test_cli_newcomer.py::test_missing_crds_are_the_same_line_from_get_and_list.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dops.cli.errors import crds_missing
from tests.planes import RealPlane

REPO = Path(__file__).resolve().parents[2]
ARGVS = [
    ["get", "some-op"],
    ["list"],
    ["list", "-A"],
    ["logs", "some-op"],
    ["logs", "-f", "some-op"],
    ["watch"],
    ["watch", "-A"],
    ["wait", "some-op"],
    ["submit", "@dops/examples/echo"],
    ["ui", "--port", "0"],
]


def test_missing_crds_are_one_line_from_every_command_on_the_real_plane(real_plane: RealPlane, tmp_path: Path) -> None:
    crds = real_plane.session().get(
        f"{real_plane.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", timeout=30
    )
    assert not [c for c in crds.json()["items"] if c["spec"]["group"] == "dops.io"], "the dops CRDs are installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPS_")}
    env.update(KUBECONFIG=str(real_plane.kubeconfig), PYTHONPATH=str(REPO / "operator"), COLUMNS="250")
    expected = f"error: {crds_missing(real_plane.url).message}"
    for args in ARGVS:
        run = subprocess.run(
            [sys.executable, "-m", "dops", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert (run.returncode, run.stderr.strip()) == (3, expected), (args, run.stderr)
