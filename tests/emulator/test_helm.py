"""Real helm v4 against both control planes, embedded and real (spec S9, statements 62 and 64; H2-H7).

A throwaway chart is built in tmp_path: a `crds/` CRD (Gadget), a ConfigMap driven by a value, a second
ConfigMap that a value can drop, a Gadget CR, and a `post-install,post-upgrade` hook ConfigMap (the hook Job
case, statement 63, is covered with the Job controller).

Covered:
- `helm install` applies the CRD and every object (server-side apply), runs the hook, and writes release Secret
  `sh.helm.release.v1.<rel>.v1` (protobuf POST/PUT) with labels owner=helm, status=deployed (62);
- `helm upgrade` with a changed value updates the ConfigMap, deletes an object dropped from the chart, re-runs
  the hook, and leaves v1 `superseded` and v2 `deployed` (62);
- `helm list` and `helm status` report the release (62);
- `helm uninstall` removes every chart object and every release Secret (62);
- `helm install --create-namespace -n <new>` creates the namespace (protobuf Namespace POST) and installs there;
- protobuf-encoded Secret POST and PUT round-trip: a JSON GET returns the same base64 `data`, labels and `type`
  (64); helm's protobuf-first Accept is answered in protobuf upstream, in JSON by the emulator (a documented gap).
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dops.emulator.protobuf import decode_object, encode_object
from tests.builders import WidgetCRD
from tests.emulator.kube_http import Kube
from tests.helpers import CLI
from tests.planes import Plane, made_by_test

pytestmark = [pytest.mark.helm, pytest.mark.both_planes]

JSON = dict[str, Any]
PROTOBUF = "application/vnd.kubernetes.protobuf"
GADGET_CRD = WidgetCRD(plural="gadgets", kind="Gadget")

CHART_YAML = {"apiVersion": "v2", "name": "testchart", "version": "0.1.0", "appVersion": "1.0"}
VALUES_YAML = {"size": 3, "extra": True}
TEMPLATES = {
    "configmap.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cfg
data:
  size: {{ .Values.size | quote }}
""",
    "extra.yaml": """\
{{- if .Values.extra }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-extra
data:
  present: "yes"
{{- end }}
""",
    "gadget.yaml": """\
apiVersion: example.com/v1
kind: Gadget
metadata:
  name: {{ .Release.Name }}-gadget
spec:
  size: {{ .Values.size }}
""",
    "hook.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    helm.sh/hook: post-install,post-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
data:
  revision: {{ .Release.Revision | quote }}
""",
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    root = tmp_path / "testchart"
    (root / "templates").mkdir(parents=True)
    (root / "crds").mkdir()
    (root / "Chart.yaml").write_text(yaml.safe_dump(CHART_YAML))
    (root / "values.yaml").write_text(yaml.safe_dump(VALUES_YAML))
    (root / "crds" / "gadgets.yaml").write_text(yaml.safe_dump(GADGET_CRD.build()))
    for name, text in TEMPLATES.items():
        (root / "templates" / name).write_text(text)
    return root


@pytest.fixture
def kube(plane: Plane) -> Iterator[Kube]:
    client = Kube(plane)
    yield client
    client.close()


def release_secrets(kube: Kube, release: str, namespace: str = "default") -> dict[str, JSON]:
    listing = kube.ok(
        kube.get(f"/api/v1/namespaces/{namespace}/secrets", params={"labelSelector": f"owner=helm,name={release}"}),
        200,
    )
    return {item["metadata"]["name"]: item for item in listing["items"]}


def decode_release(secret: JSON) -> JSON:
    """helm stores base64(gzip(release JSON)) in data.release, itself base64 in the Secret."""
    payload = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    decoded: JSON = json.loads(gzip.decompress(payload))
    return decoded


def get(kube: Kube, path: str) -> JSON | None:
    response = kube.get(path)
    if response.status_code == 404:
        return None
    return kube.ok(response, 200)


CM = "/api/v1/namespaces/{ns}/configmaps/{name}"
GADGET = "/apis/example.com/v1/namespaces/{ns}/gadgets/{name}"


def test_helm_install_upgrade_list_status_uninstall(helm: CLI, kube: Kube, chart: Path) -> None:
    """S9 / statement 62: real helm install, upgrade, list, status and uninstall of a chart with a `crds/` CRD,
    a ConfigMap, a CR and a post-install hook all succeed; release Secrets carry owner=helm and
    status=deployed|superseded; after uninstall no chart objects or release Secrets remain."""
    out = helm.run("install", "r1", str(chart), "-n", "default")
    assert "STATUS: deployed" in out.stdout

    crd = get(kube, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com")
    assert crd is not None
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"
    cfg = get(kube, CM.format(ns="default", name="r1-cfg"))
    assert cfg is not None and cfg["data"] == {"size": "3"}
    assert cfg["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert cfg["metadata"]["annotations"]["meta.helm.sh/release-name"] == "r1"
    assert any(m["manager"] == "helm" and m["operation"] == "Apply" for m in cfg["metadata"]["managedFields"])
    assert get(kube, CM.format(ns="default", name="r1-extra")) is not None
    gadget = get(kube, GADGET.format(ns="default", name="r1-gadget"))
    assert gadget is not None and gadget["spec"] == {"size": 3, "color": "red"}
    hook = get(kube, CM.format(ns="default", name="r1-hook"))
    assert hook is not None and hook["data"] == {"revision": "1"}, "the post-install hook ran"

    secrets = release_secrets(kube, "r1")
    assert list(secrets) == ["sh.helm.release.v1.r1.v1"]
    v1 = secrets["sh.helm.release.v1.r1.v1"]
    assert v1["type"] == "helm.sh/release.v1"
    assert {k: v1["metadata"]["labels"][k] for k in ("owner", "status", "name", "version")} == {
        "owner": "helm",
        "status": "deployed",
        "name": "r1",
        "version": "1",
    }
    release = decode_release(v1)
    assert (release["name"], release["version"], release["info"]["status"]) == ("r1", 1, "deployed")

    # --wait (kstatus watcher) uses streaming lists per kind: ConfigMaps are Current at once, the CR too.
    helm.run(
        "upgrade", "r1", str(chart), "-n", "default", "--set=size=5", "--set=extra=false", "--wait", "--timeout=30s"
    )
    cfg = get(kube, CM.format(ns="default", name="r1-cfg"))
    assert cfg is not None and cfg["data"] == {"size": "5"}
    assert get(kube, CM.format(ns="default", name="r1-extra")) is None, "an object dropped from the chart is deleted"
    gadget = get(kube, GADGET.format(ns="default", name="r1-gadget"))
    assert gadget is not None and gadget["spec"]["size"] == 5 and gadget["metadata"]["generation"] == 2
    new_hook = get(kube, CM.format(ns="default", name="r1-hook"))
    assert new_hook is not None and new_hook["data"] == {"revision": "2"}
    assert new_hook["metadata"]["uid"] != hook["metadata"]["uid"], "before-hook-creation recreates the hook"

    secrets = release_secrets(kube, "r1")
    assert {name: s["metadata"]["labels"]["status"] for name, s in secrets.items()} == {
        "sh.helm.release.v1.r1.v1": "superseded",
        "sh.helm.release.v1.r1.v2": "deployed",
    }
    assert decode_release(secrets["sh.helm.release.v1.r1.v2"])["config"] == {"size": 5, "extra": False}

    listed = json.loads(helm.run("list", "-n", "default", "-o", "json").stdout)
    assert [(r["name"], r["namespace"], r["revision"], r["status"], r["chart"]) for r in listed] == [
        ("r1", "default", "2", "deployed", "testchart-0.1.0")
    ]
    status = json.loads(helm.run("status", "r1", "-n", "default", "-o", "json").stdout)
    assert (status["name"], status["version"], status["info"]["status"]) == ("r1", 2, "deployed")
    table_status = helm.run("status", "r1", "-n", "default").stdout
    assert "STATUS: deployed" in table_status and "REVISION: 2" in table_status

    out = helm.run("uninstall", "r1", "-n", "default")
    assert 'release "r1" uninstalled' in out.stdout
    assert release_secrets(kube, "r1") == {}
    assert get(kube, CM.format(ns="default", name="r1-cfg")) is None
    assert get(kube, GADGET.format(ns="default", name="r1-gadget")) is None
    assert json.loads(helm.run("list", "-n", "default", "-o", "json").stdout) == []
    # Only the hook is left: helm documents that hook resources are not managed as part of the release.
    left = kube.ok(kube.get("/api/v1/namespaces/default/configmaps"), 200)["items"]
    assert [cm["metadata"]["name"] for cm in made_by_test(left)] == ["r1-hook"]
    # helm never deletes CRDs from crds/ (documented helm behaviour).
    assert get(kube, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com") is not None


def test_helm_install_create_namespace(helm: CLI, kube: Kube, chart: Path) -> None:
    """S9 / statement 62 (H7): `helm install --create-namespace -n newns` creates the namespace (a protobuf
    Namespace POST) and installs the chart and its release Secret there."""
    assert get(kube, "/api/v1/namespaces/newns") is None
    helm.run("install", "r2", str(chart), "-n", "newns", "--create-namespace")
    ns = get(kube, "/api/v1/namespaces/newns")
    assert ns is not None and ns["status"]["phase"] == "Active"
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "newns"
    cfg = get(kube, CM.format(ns="newns", name="r2-cfg"))
    assert cfg is not None and cfg["data"] == {"size": "3"}
    assert get(kube, GADGET.format(ns="newns", name="r2-gadget")) is not None
    assert get(kube, CM.format(ns="default", name="r2-cfg")) is None
    secrets = release_secrets(kube, "r2", "newns")
    assert {n: s["metadata"]["labels"]["status"] for n, s in secrets.items()} == {
        "sh.helm.release.v1.r2.v1": "deployed"
    }
    listed = json.loads(helm.run("list", "-A", "-o", "json").stdout)
    assert [(r["name"], r["namespace"]) for r in listed] == [("r2", "newns")]


RELEASE_BLOB = gzip.compress(b'{"name":"r9"}')
RELEASE_LABELS = {"name": "r9", "owner": "helm", "status": "pending-install", "version": "1", "createdAt": "1700000000"}


def release_secret() -> JSON:
    """A release Secret as helm's protobuf client sends it (empty namespace, uid and resourceVersion)."""
    payload = base64.b64encode(RELEASE_BLOB).decode()  # helm stores base64(gzip(json)) as the Secret's bytes
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "sh.helm.release.v1.r9.v1",
            "namespace": "",
            "uid": "",
            "resourceVersion": "",
            "labels": dict(RELEASE_LABELS),
        },
        "type": "helm.sh/release.v1",
        "data": {
            "release": base64.b64encode(payload.encode()).decode(),
            "binary": base64.b64encode(b"\x00\xff\x10").decode(),
        },
    }


def test_protobuf_secret_post_and_put_round_trip(kube: Kube) -> None:
    """S9 / statement 64 (H7): a protobuf-encoded Secret POST and PUT are stored so that a JSON GET returns the
    same base64 `data`, labels and `type`. (The encoding of the answer to helm's protobuf-first Accept is the
    next test's statement.)"""
    secret = release_secret()
    labels = RELEASE_LABELS
    blob = RELEASE_BLOB
    path = "/api/v1/namespaces/default/secrets"
    response = kube.request(
        "POST", path, data=encode_object(secret), headers={"Content-Type": PROTOBUF, "Accept": "application/json"}
    )
    created = kube.ok(response, 201)
    assert response.headers["Content-Type"] == "application/json"
    assert created["metadata"]["namespace"] == "default" and created["metadata"]["uid"]

    stored = kube.ok(kube.get(f"{path}/sh.helm.release.v1.r9.v1"), 200)
    assert stored["data"] == secret["data"]
    assert stored["metadata"]["labels"] == labels
    assert stored["type"] == "helm.sh/release.v1"

    updated = {
        **secret,
        "metadata": {**secret["metadata"], "labels": {**labels, "status": "deployed", "modifiedAt": "1700000001"}},
        "data": {"release": secret["data"]["release"]},
    }
    response = kube.request(
        "PUT", f"{path}/sh.helm.release.v1.r9.v1", data=encode_object(updated), headers={"Content-Type": PROTOBUF}
    )
    replaced = kube.ok(response, 200)
    assert int(replaced["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]

    stored = kube.ok(kube.get(f"{path}/sh.helm.release.v1.r9.v1"), 200)
    assert stored["data"] == {"release": secret["data"]["release"]}
    assert stored["metadata"]["labels"] == {**labels, "status": "deployed", "modifiedAt": "1700000001"}
    assert stored["type"] == "helm.sh/release.v1"
    assert base64.b64decode(base64.b64decode(stored["data"]["release"])) == blob


@pytest.mark.gap("the emulator answers JSON only; upstream answers helm's protobuf-first Accept in protobuf")
def test_protobuf_first_accept(plane: Plane, kube: Kube) -> None:
    """S9 / statement 64 (H7): helm's client POSTs a protobuf Secret with `Accept: protobuf,json`. Upstream
    answers the created Secret in protobuf; the emulator (JSON responses only) answers it in JSON. Either way
    the answer is the stored Secret."""
    secret = release_secret()
    response = kube.request(
        "POST",
        "/api/v1/namespaces/default/secrets",
        data=encode_object(secret),
        headers={"Content-Type": PROTOBUF, "Accept": f"{PROTOBUF},application/json"},
    )
    assert response.status_code == 201, response.text
    if plane.real:
        assert response.headers["Content-Type"] == PROTOBUF
        created = decode_object(response.content)
    else:
        assert response.headers["Content-Type"] == "application/json"
        created = response.json()
    assert (created["apiVersion"], created["kind"]) == ("v1", "Secret")
    assert created["metadata"]["namespace"] == "default" and created["metadata"]["uid"]
    assert created["metadata"]["labels"] == RELEASE_LABELS
    assert created["data"] == secret["data"] and created["type"] == "helm.sh/release.v1"
    stored = kube.ok(kube.get("/api/v1/namespaces/default/secrets/sh.helm.release.v1.r9.v1"), 200)
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]
    assert stored["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
