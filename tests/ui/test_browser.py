"""`dops ui` in a real headless Chromium (Debian's `chromium`, driven by playwright's Python client).

Live progress of a running operation, the filters, the log view and every action, as a user clicks
them. Skips in one line where no chromium (or playwright) exists. `DOPS_UI_SCREENSHOTS=DIR` saves the
pages docs/ui.md shows into DIR (`DOPS_UI_SCREENSHOTS=docs/img` refreshes the docs' pictures).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import eventually
from tests.integration.operator_env import OperatorEnv

from .conftest import RunningUi, ui_server

CHROMIUM = os.environ.get("DOPS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

if CHROMIUM is None or sync_playwright is None:
    pytest.skip(
        "browser tests skipped: no chromium on PATH (apt-get install chromium)"
        if CHROMIUM is None
        else "browser tests skipped: playwright is not installed (pip install -e '.[test]')",
        allow_module_level=True,
    )

pytestmark = [pytest.mark.kopf]

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert sync_playwright is not None and CHROMIUM is not None
    with sync_playwright() as driver:  # stops the driver (and so the browser) even when a test fails
        launched = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def ui(operator_env: OperatorEnv, namespace: str) -> Iterator[RunningUi]:
    with ui_server(operator_env, namespace) as running:
        yield running


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("DOPS_UI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def queue(
    env: OperatorEnv, namespace: str, operator: str, params: dict[str, Any], label: str | None = None, **kw: Any
) -> str:
    doc = env.service(namespace).queue_operation(
        operator, label=label, context={"request_params": {"params": params}}, **kw
    )
    assert doc.id is not None
    return doc.id


def percent(page: Page, name: str) -> int:
    text = page.locator(f'tr[data-name="{name}"] .pct').inner_text().strip().rstrip("%")
    return int(text) if text else 0


def test_a_running_operation_progresses_live_and_its_log_streams(
    operator_env: OperatorEnv, namespace: str, ui: RunningUi, page: Page
) -> None:
    for i in range(3):
        queue(operator_env, namespace, "@dops/examples/echo", {"i": i}, label=f"echo {i}")
    failed = queue(operator_env, namespace, "@dops/examples/fail", {"message": "disk full"}, label="nightly export")
    name = queue(operator_env, namespace, "@dops/examples/count", {"n": 30, "delay": 0.25}, label="count to 30")
    page.goto(ui.url)
    page.wait_for_selector(f'tr[data-name="{name}"][data-state="running"]')
    first = percent(page, name)
    # no reload: the watch pushes the change and the page redraws the row
    page.wait_for_function(
        '([name, first]) => { const t = document.querySelector(`tr[data-name="${name}"] .pct`);'
        " return t && parseInt(t.textContent) > first; }",
        arg=[name, first],
    )
    assert percent(page, name) > first
    # Each bar is drawn to its percentage: a failure without progress shows an empty bar, not a full one (the
    # page's Content-Security-Policy ignores inline style attributes, so the width must go through the CSSOM).
    page.wait_for_selector(f'tr[data-name="{failed}"][data-state="failed"]')
    drawn = page.evaluate(
        '(name) => { const bar = document.querySelector(`tr[data-name="${name}"] .bar`);'
        " return bar.firstChild.getBoundingClientRect().width / bar.getBoundingClientRect().width; }",
        failed,
    )
    assert drawn == 0, f"the failed operation's bar is drawn {drawn:.0%} full"
    screenshot(page, "ui-operations.png")
    page.click(f'tr[data-name="{name}"] a')
    page.wait_for_selector("#log")
    page.wait_for_function("() => document.querySelector('#log').textContent.includes('count: 3/30')")
    assert page.locator("#timeline li[data-phase=running].reached").count() == 1
    assert page.locator("#params").inner_text().replace(" ", "").find('"n":30') >= 0
    screenshot(page, "ui-operation.png")
    page.wait_for_function("() => document.querySelector('#log').textContent.includes('count: 30/30')")
    page.wait_for_selector("#timeline li[data-phase=completed].reached")
    page.wait_for_selector("#result")


def test_filters_counts_and_search(operator_env: OperatorEnv, namespace: str, ui: RunningUi, page: Page) -> None:
    echoes = [queue(operator_env, namespace, "@dops/examples/echo", {}, label=f"{w} run") for w in ("alpha", "bravo")]
    failed = queue(operator_env, namespace, "@dops/examples/fail", {"message": "boom"}, label="doomed")
    for name in echoes:
        operator_env.wait_state(namespace, name, "completed")
    operator_env.wait_state(namespace, failed, "failed")
    page.goto(ui.url)
    page.wait_for_selector('[data-count="completed"]:text-is("2")')
    assert page.locator('[data-count="failed"]').inner_text() == "1"
    page.click('.chip[data-state="failed"]')
    page.wait_for_function("() => document.querySelectorAll('#ops tr.op').length === 1")
    assert page.locator("#ops tr.op").get_attribute("data-name") == failed
    assert "state=failed" in page.url
    page.click('.chip[data-state=""]')
    page.wait_for_function("() => document.querySelectorAll('#ops tr.op').length === 3")
    page.select_option("#f-operator", "@dops/examples/echo")
    page.wait_for_function("() => document.querySelectorAll('#ops tr.op').length === 2")
    page.select_option("#f-operator", "")
    page.fill("#f-search", "bravo")
    page.wait_for_function("() => document.querySelectorAll('#ops tr.op').length === 1")
    assert page.locator("#ops tr.op").get_attribute("data-name") == echoes[1]
    page.fill("#f-search", "")
    page.fill("#f-label", "doom")
    page.wait_for_url(re.compile(r"label=doom"))
    page.wait_for_selector(f'#ops tr.op[data-name="{failed}"]')
    assert page.locator("#ops tr.op").count() == 1
    page.fill("#f-label", "")
    assert page.locator("#f-dataset").is_hidden()  # no operation names a dataset yet
    with_dataset = operator_env.service(namespace).queue_operation(
        "@dops/examples/echo", label="on a dataset", context={"request_params": {"dataset_name": "quickstart"}}
    )
    page.wait_for_selector("#f-dataset", state="visible")
    page.select_option("#f-dataset", "quickstart")
    page.wait_for_selector(f'#ops tr.op[data-name="{with_dataset.id}"]')
    page.wait_for_function("() => document.querySelectorAll('#ops tr.op').length === 1")
    operator_env.wait_state(namespace, str(with_dataset.id), "completed")
    page.goto(ui.url + "#/targets")
    page.wait_for_selector('#targets tr[data-target="default"] td.completed:text-is("3")')
    screenshot(page, "ui-targets.png")


def test_every_action_from_the_operation_page(
    operator_env: OperatorEnv, namespace: str, ui: RunningUi, page: Page
) -> None:
    name = queue(operator_env, namespace, "@dops/examples/sleep", {"seconds": 60}, label="nap")
    operator_env.wait_state(namespace, name, "running")
    replies = {"confirm": True, "prompt": "renamed in the browser"}

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "prompt":
            dialog.accept(replies["prompt"])
        elif replies["confirm"]:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(f"{ui.url}#/op/{namespace}/{name}")
    page.wait_for_selector('button[data-action="pin"]')
    # cancel asks first; saying no changes nothing
    replies["confirm"] = False
    assert _dialog_of(page, 'button[data-action="cancel"]').startswith(f"Cancel operation {name}?")
    assert operator_env.get_op(namespace, name)["status"]["runState"] == "running"
    replies["confirm"] = True
    page.click('button[data-action="pin"]')
    page.wait_for_selector('button[data-action="unpin"]')
    page.click('button[data-action="label"]')
    page.wait_for_selector('h2:has-text("renamed in the browser")')
    page.click('button[data-action="cancel"]')
    page.wait_for_selector('#op-head .state[data-state="failed"]')
    page.wait_for_selector("#error")
    assert eventually(lambda: operator_env.get_op(namespace, name)["spec"], lambda s: s.get("pinned") is True)
    page.click('button[data-action="archive"]')
    page.wait_for_selector('button[data-action="unarchive"]')
    page.click('button[data-action="unarchive"]')
    page.wait_for_selector('button[data-action="archive"]')
    page.click('button[data-action="unpin"]')
    page.wait_for_selector('button[data-action="pin"]')
    # a refresh that changes nothing the buttons do keeps them: one replaced between a mouse
    # press and its release would swallow the click
    page.eval_on_selector('button[data-action="rerun"]', "b => { b.dataset.seen = 'yes'; }")
    page.evaluate("() => current.refresh(null)")
    assert page.get_attribute('button[data-action="rerun"]', "data-seen") == "yes"
    page.click('button[data-action="rerun"]')
    page.wait_for_url(re.compile(rf"#/op/{namespace}/(?!{name}$)"))
    rerun = page.url.rsplit("/", 1)[-1]
    page.wait_for_selector('h2:has-text("renamed in the browser")')
    # running: the dialog says so, then it is deleted with its pod
    assert "Delete operation" in _dialog_of(page, 'button[data-action="delete"]')
    page.wait_for_url(re.compile(r"#/$"))
    eventually(lambda: [o["metadata"]["name"] for o in _ops(operator_env, namespace)], lambda n: rerun not in n)
    page.goto(f"{ui.url}#/op/{namespace}/{name}")
    page.wait_for_selector('button[data-action="delete"]')
    page.click('button[data-action="delete"]')
    page.wait_for_url(re.compile(r"#/$"))
    page.wait_for_selector("#ops td:has-text('No operations match.')")


def test_read_only_shows_no_actions(operator_env: OperatorEnv, namespace: str, page: Page) -> None:
    name = queue(operator_env, namespace, "@dops/examples/echo", {})
    with ui_server(operator_env, namespace, read_only=True) as ui:
        page.goto(f"{ui.url}#/op/{namespace}/{name}")
        page.wait_for_selector(".actions:has-text('read-only')")
        assert page.locator("button[data-action]").count() == 0
        assert "read-only" in page.locator("#scope").inner_text()


def _dialog_of(page: Page, selector: str) -> str:
    """Click, and return the message of the dialog the click opened.

    The page's ``dialog`` handler answers it; waiting for the event here (rather than reading
    what the handler recorded right after the click) is what makes the order certain: a click
    can return before Playwright has delivered the dialog to the handler.
    """
    with page.expect_event("dialog") as opened:
        page.click(selector)
    message: str = opened.value.message
    return message


def _ops(env: OperatorEnv, namespace: str) -> list[dict[str, Any]]:
    body = env.kube.request("GET", f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegatedoperations")
    items: list[dict[str, Any]] = body.get("items") or []
    return items


def test_all_namespaces_can_be_narrowed_to_one(operator_env: OperatorEnv, namespace: str, page: Page) -> None:
    other = operator_env.new_namespace()
    queue(operator_env, namespace, "@dops/examples/echo", {})
    theirs = queue(operator_env, other, "@dops/examples/echo", {})
    with ui_server(operator_env, None) as ui:
        page.goto(ui.url)
        page.wait_for_selector(f'#f-namespace option[value="{other}"]', state="attached")
        page.select_option("#f-namespace", other)
        page.wait_for_url(re.compile(rf"namespace={other}"))
        page.wait_for_selector(f'#ops tr.op[data-name="{theirs}"]')
        page.wait_for_function("() => document.querySelectorAll('#ops tr.op').length === 1")
        assert "all namespaces" in page.locator("#scope").inner_text()
