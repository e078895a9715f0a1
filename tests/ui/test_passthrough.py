"""The in-cluster dashboard (`dops ui --auth passthrough`, the chart's `ui` component) on the real control plane.

The real API server (TLS, ServiceAccount tokens, RBAC) judges every request, so these tests show that the
dashboard acts only with the token each request carries, never with credentials of its own:
- no token: 401 and a page saying how to authenticate (JSON for the page's script); /healthz needs none;
- a token the API rejects: 401; a token with no rights: the API's own 403 (naming the user and the resource), as a
  page and as the script's one-line error;
- a token with read rights sees the operations of its namespace (its own watch); the sign-in form keeps a token in a
  cookie; a token whose ServiceAccount is deleted stops seeing them at the next check;
- actions: refused when the dashboard is read-only (`ui.actions: false`) even for a token that could do them; with
  actions on, a read-only token's action is the API's 403 and nothing changes, an editor's token does it;
- `dops ui` refuses to serve anyone but its user with its user's kubeconfig (a non-loopback --address, or
  --in-cluster, need --auth passthrough): one line, exit 2.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from dops.k8s import KubeClient, bearer_config, load_config
from dops.ui import server as ui_server_module
from dops.ui.server import TOKEN_COOKIE, UiConfig, UiServer
from tests.helpers import eventually
from tests.planes import RealPlane, with_dops_crds

from .conftest import RunningUi, serve_in_thread

JSON = dict[str, Any]
OPS = "/apis/dops.io/v1alpha1/namespaces/{ns}/delegatedoperations"
READ = ["get", "list", "watch"]


@dataclass
class Tenant:
    """A namespace with one operation and ServiceAccount tokens of three kinds of users."""

    plane: RealPlane
    namespace: str
    operation: str
    nobody: str  # a token bound to nothing
    viewer: str  # may read operations in the namespace
    editor: str  # may also change them

    def op(self) -> JSON:
        response = self.plane.session().get(
            f"{self.plane.url}{OPS.format(ns=self.namespace)}/{self.operation}", timeout=30
        )
        assert response.status_code == 200, response.text
        body: JSON = response.json()
        return body


def _post(admin: requests.Session, url: str, body: JSON) -> JSON:
    response = admin.post(url, json=body, timeout=30)
    assert response.status_code in (200, 201), response.text
    created: JSON = response.json()
    return created


def _account(admin: requests.Session, url: str, ns: str, name: str, verbs: list[str] | None) -> str:
    """A ServiceAccount (bound to a Role with `verbs` on operations, if any) and a token of it (TokenRequest)."""
    _post(admin, f"{url}/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": name}})
    if verbs is not None:
        rules = [
            {"apiGroups": ["dops.io"], "resources": ["delegatedoperations", "delegationtargets"], "verbs": verbs},
            {"apiGroups": ["dops.io"], "resources": ["delegatedoperations/status"], "verbs": verbs},
        ]
        rbac = f"{url}/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
        _post(admin, f"{rbac}/roles", {"metadata": {"name": name}, "rules": rules})
        binding = {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        }
        _post(admin, f"{rbac}/rolebindings", binding)
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    token: str = _post(admin, f"{url}/api/v1/namespaces/{ns}/serviceaccounts/{name}/token", request)["status"]["token"]
    return token


@pytest.fixture(scope="module")
def tenant(real_cluster: Any) -> Iterator[Tenant]:
    plane = RealPlane(real_cluster)
    with with_dops_crds(plane):
        admin = plane.session()
        ns = f"ui-pass-{uuid.uuid4().hex[:6]}"
        _post(admin, f"{plane.url}/api/v1/namespaces", {"metadata": {"name": ns}})
        operation = {
            "apiVersion": "dops.io/v1alpha1",
            "kind": "DelegatedOperation",
            "metadata": {"name": "visible-op"},
            "spec": {"operator": "@dops/examples/echo", "label": "seen through passthrough"},
        }
        _post(admin, plane.url + OPS.format(ns=ns), operation)
        yield Tenant(
            plane=plane,
            namespace=ns,
            operation="visible-op",
            nobody=_account(admin, plane.url, ns, "nobody", None),
            viewer=_account(admin, plane.url, ns, "viewer", READ),
            editor=_account(admin, plane.url, ns, "editor", [*READ, "patch", "update"]),
        )


@contextlib.contextmanager
def passthrough_ui(tenant: Tenant, *, read_only: bool) -> Iterator[RunningUi]:
    """The dashboard as the chart runs it, but on a free loopback port: the API server's address and CA from the
    admin kubeconfig, its credentials dropped (`bearer_config(..., "")`), every call with the request's token."""
    base = load_config(str(tenant.plane.kubeconfig))
    kube = KubeClient(bearer_config(base, ""), retries=1)
    config = UiConfig(namespace=tenant.namespace, read_only=read_only, passthrough=True)
    try:
        with serve_in_thread(UiServer(kube, config)) as ui:
            yield ui
    finally:
        kube.close()


def leaver_name(token: str) -> str:
    """The ServiceAccount name inside a ServiceAccount token (its `sub` claim: system:serviceaccount:NS:NAME)."""
    import base64
    import json

    claims = token.split(".")[1]
    sub: str = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sub"]
    return sub.rsplit(":", 1)[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def action(ui: RunningUi, tenant: Tenant, name: str, token: str) -> requests.Response:
    headers = {**bearer(token), "X-Dops-Token": ui.token}
    url = f"{ui.url}api/operations/{tenant.namespace}/{tenant.operation}/{name}"
    return requests.post(url, json={}, headers=headers, timeout=30)


def test_without_a_token_401_and_a_page_saying_how_to_authenticate(tenant: Tenant) -> None:
    with passthrough_ui(tenant, read_only=True) as ui:
        page = requests.get(ui.url, timeout=10)
        assert page.status_code == 401 and page.headers["Content-Type"].startswith("text/html")
        assert page.headers["WWW-Authenticate"].startswith("Bearer")
        assert "kubectl create token" in page.text and "Authorization: Bearer" in page.text
        assert tenant.plane.url in page.text  # names the API server it would ask
        api = requests.get(ui.url + "api/operations", timeout=10)
        assert api.status_code == 401 and "no credentials" in api.json()["error"]
        assert requests.get(ui.url + "healthz", timeout=10).status_code == 200  # probes need no token
        garbage = requests.get(ui.url + "api/operations", headers=bearer("not-a-token"), timeout=10)
        assert garbage.status_code == 401, garbage.text
        assert garbage.json()["error"].startswith("the Kubernetes API rejected your token (401 Unauthorized)")
        assert not ui.server.views  # nothing kept for a refused token


def test_a_token_without_rights_sees_the_apis_403_readably(tenant: Tenant) -> None:
    with passthrough_ui(tenant, read_only=True) as ui:
        api = requests.get(ui.url + "api/operations", headers=bearer(tenant.nobody), timeout=10)
        assert api.status_code == 403, api.text
        error = api.json()["error"]
        assert error.startswith("the Kubernetes API refused your token (403 Forbidden)"), error
        who = f"system:serviceaccount:{tenant.namespace}:nobody"
        assert who in error and "delegatedoperations" in error and "\n" not in error
        page = requests.get(ui.url, headers=bearer(tenant.nobody), timeout=10)
        assert page.status_code == 403 and who in page.text and "Not allowed" in page.text


def test_a_viewer_token_sees_its_operations_and_the_sign_in_cookie_works(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    with passthrough_ui(tenant, read_only=True) as ui:
        body = eventually(
            lambda: requests.get(ui.url + "api/operations", headers=bearer(tenant.viewer), timeout=10).json(),
            lambda b: b.get("total") == 1,
        )
        assert body["items"][0]["label"] == "seen through passthrough"
        assert len(ui.server.views) == 1
        # the sign-in form: a token the API accepts goes into an HttpOnly, SameSite=Strict cookie
        browser = requests.Session()
        refused = browser.post(ui.url + "login", data={"token": tenant.nobody}, allow_redirects=False, timeout=10)
        assert refused.status_code == 403 and TOKEN_COOKIE not in browser.cookies
        signed = browser.post(ui.url + "login", data={"token": tenant.viewer}, allow_redirects=False, timeout=10)
        assert signed.status_code == 303, signed.text
        cookie = signed.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert browser.get(ui.url + "api/operations", timeout=10).json()["total"] == 1
        assert browser.get(ui.url, timeout=10).status_code == 200
        # a ServiceAccount that goes: its token stops working at the next check (every RECHECK_SECONDS)
        admin = tenant.plane.session()
        leaver = _account(admin, tenant.plane.url, tenant.namespace, f"leaver-{uuid.uuid4().hex[:4]}", READ)
        assert requests.get(ui.url + "api/operations", headers=bearer(leaver), timeout=10).status_code == 200
        assert len(ui.server.views) == 2
        monkeypatch.setattr(ui_server_module, "RECHECK_SECONDS", 0.0)
        account = leaver_name(leaver)
        gone = admin.delete(
            f"{tenant.plane.url}/api/v1/namespaces/{tenant.namespace}/serviceaccounts/{account}", timeout=30
        )
        assert gone.status_code == 200, gone.text
        after = eventually(
            lambda: requests.get(ui.url + "api/operations", headers=bearer(leaver), timeout=10),
            lambda r: r.status_code == 401,
            timeout=30,
        )
        assert "rejected your token" in after.json()["error"]
        assert len(ui.server.views) == 1  # its view (watch, cache) is gone; the viewer's stays


def test_actions_are_refused_when_off_even_for_a_token_that_could(tenant: Tenant) -> None:
    with passthrough_ui(tenant, read_only=True) as ui:
        page = requests.get(ui.url, headers=bearer(tenant.editor), timeout=10)
        assert page.status_code == 200 and '"readOnly": true' in page.text and ui.token not in page.text
        refused = action(ui, tenant, "pin", tenant.editor)
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    assert tenant.op()["spec"].get("pinned") in (None, False)


def test_with_actions_on_each_action_is_done_with_the_users_token(tenant: Tenant) -> None:
    with passthrough_ui(tenant, read_only=False) as ui:
        eventually(
            lambda: requests.get(ui.url + "api/operations", headers=bearer(tenant.viewer), timeout=10).json(),
            lambda b: b.get("total") == 1,
        )
        denied = action(ui, tenant, "pin", tenant.viewer)
        assert denied.status_code == 403, denied.text
        assert denied.json()["error"].startswith("the Kubernetes API refused your token (403 Forbidden)")
        assert "viewer" in denied.json()["error"] and "patch" in denied.json()["error"]
        assert tenant.op()["spec"].get("pinned") in (None, False)
        done = action(ui, tenant, "pin", tenant.editor)
        assert done.status_code == 200, done.text
        assert tenant.op()["spec"]["pinned"] is True
        assert action(ui, tenant, "pin", "").status_code == 401  # an action without a token never reaches the API


def dops_ui(*args: str) -> subprocess.CompletedProcess[str]:
    """`dops ui ARGS` as a process outside any pod (no KUBERNETES_SERVICE_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "operator")
    return subprocess.run(
        [sys.executable, "-m", "dops", "ui", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_dops_ui_serves_others_only_in_passthrough() -> None:
    """The kubeconfig mode acts with its user's credentials: it never listens beyond loopback, never in-cluster."""
    wide = dops_ui("--address", "0.0.0.0", "--port", "0")
    assert wide.returncode == 2 and wide.stderr.count("\n") == 1, wide.stderr
    assert "--auth passthrough" in wide.stderr
    pod = dops_ui("--in-cluster", "--port", "0")
    assert pod.returncode == 2 and pod.stderr.count("\n") == 1, pod.stderr
    assert "never acts as its own ServiceAccount" in pod.stderr
    outside = dops_ui("--auth", "passthrough", "--in-cluster", "--port", "0")
    assert outside.returncode == 3 and outside.stderr.count("\n") == 1, outside.stderr
    assert "KUBERNETES_SERVICE_HOST is not set" in outside.stderr
