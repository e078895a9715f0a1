"""The chart's dashboard (`ui.enabled=true`) on the real control plane and node agent (issue 14), with real
ServiceAccount tokens.

The chart's `ui` objects (helm template, default values but the e2e image and `ui.enabled`) are applied to a
namespace with PodSecurity `restricted`; the node agent runs the pod as this checkout's `dops ui --auth=passthrough
--in-cluster` (tests/e2e/entrypoint.py gives its fixed port a free host port). Its ServiceAccount gets no token:
the only cluster data in the pod is the CA of its projected volume. Then, against the running pod:
- no token: 401 and the page saying how to authenticate;
- a ServiceAccount token with no rights: the API server's 403 naming that ServiceAccount, as the page and the JSON;
- a token bound to read operations of one namespace (the dashboard is given that namespace by `ui.namespace`): the
  operation there, listed through that token's own watch;
- read-only by default: an action is refused even for a token that may patch operations.
Only the chart's dashboard is applied (not the operator): nothing here needs operations to run.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import requests
import yaml

from tests.e2e.common import CHART, REPO, RESTRICTED_LABELS, chart_values, write_values
from tests.e2e.realplane import RealPlaneCluster

UI_NAMESPACE = "dops-ui-system"
TEAM = "team-ui"
OPERATION = "seen-by-viewer"
URL_LINE = re.compile(r"dops ui: (http://\S+)")


def account_token(cluster: RealPlaneCluster, name: str, role_verbs: list[str] | None) -> str:
    """A ServiceAccount in TEAM (bound to a Role with `role_verbs` on operations, if any) and a TokenRequest token."""
    cluster.kubectl("--namespace", TEAM, "create", "serviceaccount", name)
    if role_verbs is not None:
        verbs = ",".join(role_verbs)
        cluster.kubectl(
            "--namespace", TEAM, "create", "role", name, f"--verb={verbs}",
            "--resource=delegatedoperations.dops.io,delegationtargets.dops.io",
        )  # fmt: skip
        cluster.kubectl(
            "--namespace", TEAM, "create", "rolebinding", name, f"--role={name}", f"--serviceaccount={TEAM}:{name}"
        )
    return cluster.kubectl("--namespace", TEAM, "create", "token", name).stdout.strip()


def dashboard_url(cluster: RealPlaneCluster, timeout: float = 120) -> str:
    """The URL the dashboard pod printed (its log, through the API server), once its Deployment is Available.

    Waited on the Deployment, which `helm install` has created, not on its pods: `kubectl wait pod --selector`
    fails at once with "no matching resources found" while the ReplicaSet has not created the pod yet."""
    cluster.wait("deployment/dops-ui", "condition=Available", UI_NAMESPACE, timeout)
    deadline = time.monotonic() + timeout
    log = ""
    while time.monotonic() < deadline:
        log = cluster.kubectl("--namespace", UI_NAMESPACE, "logs", "deployment/dops-ui", check=False).stdout
        found = URL_LINE.search(log)
        if found:
            return found.group(1).replace("0.0.0.0", "127.0.0.1")  # on this node the pod's address is the host's
        time.sleep(0.5)
    raise AssertionError(f"the dashboard printed no URL within {timeout}s:\n{log}\n{cluster.diagnose(UI_NAMESPACE)}")


def test_the_charts_dashboard_acts_only_with_each_users_token(
    realplane_cluster: RealPlaneCluster, tmp_path: Any
) -> None:
    cluster = realplane_cluster
    cluster.kubectl("apply", "--server-side", "--filename", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/delegatedoperations.dops.io", "--timeout=60s")
    for ns in (UI_NAMESPACE, TEAM):
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": RESTRICTED_LABELS}})
    operation = {
        "apiVersion": "dops.io/v1alpha1",
        "kind": "DelegatedOperation",
        "metadata": {"name": OPERATION, "namespace": TEAM},
        "spec": {"operator": "@dops/examples/echo", "label": "through the user's own token"},
    }
    cluster.apply(operation)
    values = write_values(chart_values(overrides={"ui": {"enabled": True, "namespace": TEAM}}), tmp_path / "v.json")
    rendered = cluster.helm(
        "template", "dops", str(CHART), "--namespace", UI_NAMESPACE, "--values", str(values),
        "--show-only", "templates/ui.yaml",
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert {d["kind"] for d in docs} == {"ServiceAccount", "Deployment", "Service"}
    cluster.kubectl("apply", "--namespace", UI_NAMESPACE, "--filename", "-", input=json.dumps({"kind": "List",
                    "apiVersion": "v1", "items": docs}))  # fmt: skip
    url = dashboard_url(cluster)
    pod = cluster.kubectl_json("--namespace", UI_NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=ui")
    spec = pod["items"][0]["spec"]
    assert spec["automountServiceAccountToken"] is False  # admitted as rendered: no token volume was added
    assert not any("serviceAccountToken" in json.dumps(v) for v in spec["volumes"])

    nobody = account_token(cluster, f"nobody-{uuid.uuid4().hex[:4]}", None)
    viewer = account_token(cluster, "viewer", ["get", "list", "watch"])
    editor = account_token(cluster, "editor", ["get", "list", "watch", "patch", "update"])

    anonymous = requests.get(url, timeout=30)
    assert anonymous.status_code == 401 and "kubectl create token" in anonymous.text, anonymous.text
    refused = requests.get(url + "api/operations", headers={"Authorization": f"Bearer {nobody}"}, timeout=30)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"].startswith("the Kubernetes API refused your token (403 Forbidden)")
    assert f"system:serviceaccount:{TEAM}:nobody" in refused.json()["error"]

    def listed() -> dict[str, Any]:
        body: dict[str, Any] = requests.get(
            url + "api/operations", headers={"Authorization": f"Bearer {viewer}"}, timeout=30
        ).json()
        return body

    deadline = time.monotonic() + 60
    body = listed()
    while body.get("total") != 1 and time.monotonic() < deadline:
        time.sleep(0.5)
        body = listed()
    assert body.get("total") == 1 and body["items"][0]["name"] == OPERATION, body
    page = requests.get(url, headers={"Authorization": f"Bearer {editor}"}, timeout=30)
    assert page.status_code == 200 and '"readOnly": true' in page.text
    action = requests.post(
        f"{url}api/operations/{TEAM}/{OPERATION}/pin", json={}, timeout=30,
        headers={"Authorization": f"Bearer {editor}", "X-Dops-Token": "any"},
    )  # fmt: skip
    assert action.status_code == 403 and "read-only" in action.json()["error"], action.text
    live = cluster.kubectl_json("--namespace", TEAM, "get", "delegatedoperation", OPERATION)
    assert live["spec"].get("pinned") in (None, False)
