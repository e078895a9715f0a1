"""Fixtures shared by all tiers: the embedded API server, real kubectl/helm, kubeconfig isolation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dops.emulator import EmbeddedServer, ServerSettings
from tests.helpers import CLI, find_binary

REPO = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-e2e", action="store_true", default=False, help="run the kind end-to-end suite")


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedServer]:
    """A fresh embedded API server in a background thread; KUBECONFIG points at it."""
    settings = ServerSettings(bookmark_interval=1.0)
    with EmbeddedServer.run_in_thread(settings) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        server.kubeconfig = kubeconfig  # type: ignore[attr-defined]
        yield server


def _cli(name: str, server: EmbeddedServer, tmp_path: Path) -> CLI:
    binary = find_binary(name)
    if binary is None:
        pytest.skip(f"{name} binary not available: run `python scripts/fetch_clients.py` (make test does)")
    home = tmp_path / f"{name}-home"
    home.mkdir(exist_ok=True)
    return CLI(binary, server.kubeconfig, home, {})  # type: ignore[attr-defined]


@pytest.fixture
def kubectl(emulator: EmbeddedServer, tmp_path: Path) -> CLI:
    return _cli("kubectl", emulator, tmp_path)


@pytest.fixture
def helm(emulator: EmbeddedServer, tmp_path: Path) -> CLI:
    return _cli("helm", emulator, tmp_path)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


os.environ.setdefault("DOPS_TESTING", "1")
