"""`dops ui` the way the README tells a newcomer (issue 14, "Done when"): in a project directory that is not the
checkout, `dops dev` with its defaults, the printed `export KUBECONFIG=…`, then `dops ui` with its defaults
(http://127.0.0.1:8765/), and the page loaded in a real headless Chromium shows the operation they submitted, live
to its end, and its log. Ctrl-C stops `dops ui` with exit 0.

Skips in one line where no chromium (or playwright) exists, or when port 8765 (the default the README names) is
taken by something else on this machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import Background

CHROMIUM = os.environ.get("DOPS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

if CHROMIUM is None or sync_playwright is None:
    pytest.skip(
        "browser tests skipped: no chromium on PATH (apt-get install chromium)"
        if CHROMIUM is None
        else "browser tests skipped: playwright is not installed (pip install -e '.[test]')",
        allow_module_level=True,
    )

REPO = Path(__file__).resolve().parents[2]
READY = "Press Ctrl-C to stop."
DEFAULT_URL = "http://127.0.0.1:8765/"  # README: `dops ui` serves http://127.0.0.1:8765/
PREFIX = "delegatedoperation.dops.io/"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"]


def dops_command() -> list[str]:
    """`dops`, the console script a user types (next to this interpreter), else `python -m dops`."""
    script = Path(sys.executable).parent / "dops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dops"]


def user_env(**extra: str) -> dict[str, str]:
    """A user's shell: nothing that points dops or kubectl elsewhere, and not this checkout on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPS_") and k not in ("KUBECONFIG", "PYTHONPATH")}
    return {**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "250", **extra}


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory that is not the checkout, where `dops dev` (no options) serves; yields it and the exported
    KUBECONFIG."""
    cwd = tmp_path_factory.mktemp("newcomer-ui")
    assert not cwd.resolve().is_relative_to(REPO)
    dev = Background([*dops_command(), "dev"], cwd=cwd, env=user_env())
    try:
        dev.wait_for_line(READY, timeout=90)
        kubeconfig = dev.wait_for_line("export KUBECONFIG=", timeout=1).split("export KUBECONFIG=", 1)[1].strip()
        yield cwd, kubeconfig.split(";")[0].strip()
    finally:
        dev.close()


def test_readme_dops_ui_shows_the_newcomers_operation_in_chromium(project: tuple[Path, str]) -> None:
    cwd, kubeconfig = project
    if port_taken(8765):
        pytest.skip("port 8765 (dops ui's default) is in use on this machine")
    env = user_env(KUBECONFIG=kubeconfig)
    submitted = subprocess.run(
        [*dops_command(), "submit", "@dops/examples/count", "-p", "n=5", "-p", "delay=0.2", "-o", "name"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    name = submitted.stdout.strip().removeprefix(PREFIX)
    ui = Background([*dops_command(), "ui"], cwd=cwd, env=env)
    try:
        line = ui.wait_for_line("dops ui: ", timeout=60)
        assert line.startswith(f'dops ui: {DEFAULT_URL} (namespace "default"'), line
        assert sync_playwright is not None and CHROMIUM is not None
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)
                problems: list[str] = []
                # nothing the page asks for fails (a 404, even the browser's own favicon request, is a console error)
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
                page.goto(DEFAULT_URL)
                page.wait_for_selector(f'tr[data-name="{name}"][data-state="completed"]')  # live, without a reload
                page.click(f'tr[data-name="{name}"] a')
                page.wait_for_function("() => (document.querySelector('#log') || {}).textContent?.includes('5/5')")
                assert problems == [], problems
            finally:
                browser.close()
        assert ui.interrupt() == 0, ui.output
    finally:
        ui.close()
