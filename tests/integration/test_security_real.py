"""issue 13 hole 2: a worker is confined to its own operation, proven on the real API server (RBAC + admission).

The chart is rendered by the real helm binary (release "sec", worker ServiceAccount "sec-worker" so that its
ValidatingAdmissionPolicy, which matches that account name in every namespace, touches no other module's
workers); its CRDs, ServiceAccounts, roles, bindings and the ValidatingAdmissionPolicy
"sec-dops-worker-own-operation" (+ binding) are applied to the session's real control plane. A worker-like token
is what a worker pod gets: a TokenRequest for the worker ServiceAccount bound to a Pod of an operation's Job, so
the API server puts the pod's name into the token's user info (extra "authentication.kubernetes.io/pod-name").

- The hole: with the worker role alone (the policy's binding not yet applied), the worker token patches another
  operation's status (forging its outcome). With the binding, the same patch is refused with the policy's message.
- A hostile worker cannot patch another operation's status, spec, labels or finalizers, nor its own spec, nor move
  its own fence (jobName) or claim for another pod; a token not bound to a pod cannot write at all; Pods and
  Secrets cannot be read. Each attempt is asserted 403.
- The real worker (`dops.worker.run_operation`, in process, with the bound token's kubeconfig and its Job's env)
  claims, runs and records its own operation through both RBAC and the policy.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.helpers import find_binary
from tests.planes import RealPlane, install_crds
from tests.realcluster.launcher import RealCluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "dops"
JSON = dict[str, Any]

RELEASE = "sec"
FULLNAME = "sec-dops"
NS = "dops-sec"
WORKER_SA = "sec-worker"
POLICY = f"{FULLNAME}-worker-own-operation"
OPS = f"/apis/dops.io/v1alpha1/namespaces/{NS}/delegatedoperations"
APPLIED_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@dataclass
class SecEnv:
    cluster: RealCluster
    admin: requests.Session
    rendered: list[JSON]
    kubectl: str
    work: Path

    def url(self, path: str) -> str:
        return self.cluster.url + path

    def session(self, token: str) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.cluster.ca_file)
        session.headers["Authorization"] = f"Bearer {token}"
        return session

    def apply(self, docs: list[JSON]) -> None:
        result = subprocess.run(
            [self.kubectl, "--kubeconfig", str(self.cluster.kubeconfig), "apply", "--server-side", "-f", "-"],
            input=yaml.safe_dump_all(docs),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr

    def post(self, path: str, body: JSON) -> JSON:
        response = self.admin.post(self.url(path), json=body, timeout=30)
        assert response.status_code in (200, 201), response.text
        created: JSON = response.json()
        return created

    def operation(self, name: str, status: JSON) -> None:
        self.post(
            OPS,
            {
                "apiVersion": "dops.io/v1alpha1",
                "kind": "DelegatedOperation",
                "metadata": {"name": name},
                "spec": {"operator": "@dops/examples/echo"},
            },
        )
        response = self.admin.patch(
            self.url(f"{OPS}/{name}/status"), json={"status": status}, headers=MERGE, timeout=30
        )
        assert response.status_code == 200, response.text

    def worker_pod(self, name: str) -> JSON:
        """A pod of the worker ServiceAccount (never scheduled: only its identity matters)."""
        return self.post(
            f"/api/v1/namespaces/{NS}/pods",
            {
                "metadata": {"name": name},
                "spec": {
                    "serviceAccountName": WORKER_SA,
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "worker", "image": "busybox"}],
                },
            },
        )

    def token(self, pod: JSON | None = None) -> str:
        spec: JSON = {"expirationSeconds": 3600}
        if pod is not None:
            spec["boundObjectRef"] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            }
        response = self.admin.post(
            self.url(f"/api/v1/namespaces/{NS}/serviceaccounts/{WORKER_SA}/token"),
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        token: str = response.json()["status"]["token"]
        return token


@pytest.fixture(scope="module")
def sec_env(real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecEnv]:
    helm, kubectl = find_binary("helm"), find_binary("kubectl")
    if helm is None or kubectl is None:
        pytest.skip("helm/kubectl binaries not available: run `python scripts/fetch_clients.py` (make test does)")
    plane = RealPlane(real_cluster)
    admin = plane.session()
    try:
        result = subprocess.run(
            [
                helm,
                "template",
                RELEASE,
                str(CHART),
                "--namespace",
                NS,
                "--set",
                f"workerServiceAccount.name={WORKER_SA}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        install_crds(plane, sorted((REPO / "crds").glob("*.yaml")))
        response = admin.post(f"{real_cluster.url}/api/v1/namespaces", json={"metadata": {"name": NS}}, timeout=30)
        assert response.status_code in (201, 409), response.text
        env = SecEnv(real_cluster, admin, rendered, kubectl, tmp_path_factory.mktemp("sec"))
        env.apply([doc for doc in rendered if doc["kind"] in APPLIED_KINDS])
        yield env
    finally:
        plane.reset()


def rendered(env: SecEnv, kind: str) -> JSON:
    [doc] = [d for d in env.rendered if d["kind"] == kind and d["metadata"]["name"] == POLICY]
    return doc


def forbidden(response: requests.Response, says: str) -> None:
    where = f"{response.request.method} {response.url}"
    assert response.status_code == 403, f"{where}: {response.status_code} {response.text}"
    assert says in response.json()["message"], f"{where}: {response.json()['message']}"


RBAC = f"system:serviceaccount:{NS}:{WORKER_SA}"  # RBAC's refusals name the user
POLICY_SAYS = f"ValidatingAdmissionPolicy '{POLICY}'"


def test_worker_token_is_confined_to_its_own_operation(sec_env: SecEnv) -> None:
    env = sec_env
    env.operation("mine", {"runState": "scheduled", "jobName": "mine-1", "attempt": 1})
    env.operation("theirs", {"runState": "running", "jobName": "theirs-1", "attempt": 1, "podName": "theirs-1-zzzzz"})
    worker = env.session(env.token(env.worker_pod("mine-1-abcde")))
    theirs = env.url(f"{OPS}/theirs")
    forged = {"status": {"progress": {"label": "forged by another operation's worker"}}}

    # The hole: RBAC alone lets any worker of the namespace write any operation's status.
    hole = worker.patch(f"{theirs}/status", json=forged, headers=MERGE, timeout=10)
    assert hole.status_code == 200, hole.text

    env.apply([rendered(env, "ValidatingAdmissionPolicy"), rendered(env, "ValidatingAdmissionPolicyBinding")])
    deadline = time.monotonic() + 30
    while True:  # the policy takes effect within a moment of its binding
        response = worker.patch(f"{theirs}/status", json=forged, headers=MERGE, timeout=10)
        if response.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    forbidden(response, POLICY_SAYS)
    forbidden(response, "pod mine-1-abcde may only write the status of the operation whose Job it belongs to")

    # another operation: spec, labels, finalizers (RBAC: no patch on the main resource), deletion
    forbidden(worker.patch(theirs, json={"spec": {"label": "x"}}, headers=MERGE, timeout=10), RBAC)
    forbidden(
        worker.patch(
            theirs, json={"metadata": {"labels": {"dops.io/run-state": "completed"}}}, headers=MERGE, timeout=10
        ),
        RBAC,
    )
    forbidden(worker.patch(theirs, json={"metadata": {"finalizers": ["x.io/block"]}}, headers=MERGE, timeout=10), RBAC)
    forbidden(worker.delete(theirs, timeout=10), RBAC)
    # its own operation: not its spec; not its fence; not a claim for another pod
    mine = env.url(f"{OPS}/mine")
    forbidden(worker.patch(mine, json={"spec": {"label": "x"}}, headers=MERGE, timeout=10), RBAC)
    forbidden(
        worker.patch(f"{mine}/status", json={"status": {"jobName": "theirs-1"}}, headers=MERGE, timeout=10),
        "cannot change its operation's jobName or attempt",
    )
    forbidden(
        worker.patch(f"{mine}/status", json={"status": {"podName": "mine-1-other"}}, headers=MERGE, timeout=10),
        "may only claim its operation for its own pod",
    )
    # a token of the worker account not bound to a pod writes nothing
    unbound = env.session(env.token())
    forbidden(
        unbound.patch(f"{mine}/status", json={"status": {"progress": {"label": "x"}}}, headers=MERGE, timeout=10),
        "must be the one bound to its pod",
    )
    # no Pods (their env), no Secrets
    for path in (
        f"/api/v1/namespaces/{NS}/pods",
        f"/api/v1/namespaces/{NS}/pods/mine-1-abcde",
        f"/api/v1/namespaces/{NS}/secrets",
    ):
        forbidden(worker.get(env.url(path), timeout=10), RBAC)
    after = env.admin.get(theirs, timeout=10).json()
    assert after["status"]["runState"] == "running" and not after["metadata"].get("finalizers")
    assert after["status"]["podName"] == "theirs-1-zzzzz" and after["status"]["jobName"] == "theirs-1"
    assert after["spec"].get("label") is None


def test_the_real_worker_runs_its_own_operation_through_the_policy(
    sec_env: SecEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dops worker run` with a worker pod's bound token and its Job's env: get, claim (scheduled → running, its
    podName), progress and the outcome all pass RBAC and the policy."""
    from dops.worker import run_operation

    env = sec_env
    env.apply([rendered(env, "ValidatingAdmissionPolicy"), rendered(env, "ValidatingAdmissionPolicyBinding")])
    env.operation("runs", {"runState": "scheduled", "jobName": "runs-1", "attempt": 1})
    uid = env.admin.get(env.url(f"{OPS}/runs"), timeout=10).json()["metadata"]["uid"]
    token = env.token(env.worker_pod("runs-1-fghij"))
    kubeconfig = env.cluster.write_kubeconfig(tmp_path / "worker.kubeconfig", token=token)
    for key, value in {
        "DOPS_POD_NAME": "runs-1-fghij",
        "DOPS_JOB_NAME": "runs-1",
        "DOPS_ATTEMPT": "1",
        "DOPS_OPERATION_UID": uid,
        "DOPS_TERMINATION_MESSAGE_PATH": str(tmp_path / "term"),
    }.items():
        monkeypatch.setenv(key, value)
    assert run_operation(f"{NS}/runs", kubeconfig=str(kubeconfig)) == 0
    status = env.admin.get(env.url(f"{OPS}/runs"), timeout=10).json()["status"]
    assert status["runState"] == "completed" and status["podName"] == "runs-1-fghij", status


# --------------------------------------------------------------------------------------------- DelegationPolicy
TARGET_POLICY = f"{FULLNAME}-target-policy"


PARAMS_NOT_SYNCED = "not yet synced to use for admission"


def kubectl_apply(env: SecEnv, doc: JSON) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` of one document, as a user would retry it while a new policy warms up: right after a
    ValidatingAdmissionPolicy with a paramKind is bound, the real API server denies every request it matches
    (failurePolicy Fail) with "paramKind … not yet synced to use for admission" until its informer of the
    params has synced (docs/GAPS.md, "Admission policy params")."""
    deadline = time.monotonic() + 60
    while True:
        result = subprocess.run(
            [env.kubectl, "--kubeconfig", str(env.cluster.kubeconfig), "apply", "-f", "-"],
            input=yaml.safe_dump(doc),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if PARAMS_NOT_SYNCED not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def dtarget(name: str, **spec: Any) -> JSON:
    spec.setdefault("maxConcurrent", 2)
    return {
        "apiVersion": "dops.io/v1alpha1",
        "kind": "DelegationTarget",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def test_a_target_breaking_a_delegation_policy_is_rejected_at_apply(sec_env: SecEnv) -> None:
    """The chart's "<fullname>-target-policy" (paramKind DelegationPolicy): without a policy a target that asks for
    anything is accepted (as before); with one, `kubectl apply` of a violating target fails with the policy's
    message, field by field, and a compliant target is accepted."""
    env = sec_env
    [policy_doc] = [
        d for d in env.rendered if d["kind"] == "ValidatingAdmissionPolicy" and d["metadata"]["name"] == TARGET_POLICY
    ]
    [binding] = [
        d
        for d in env.rendered
        if d["kind"] == "ValidatingAdmissionPolicyBinding" and d["metadata"]["name"] == TARGET_POLICY
    ]
    env.apply([policy_doc, binding])  # the real API server type-checks the policy's CEL against both CRDs
    anything = dtarget(
        "anything", image="docker.io/evil:1", allowImportPaths=True, podTemplate={"serviceAccountName": "default"}
    )
    before = kubectl_apply(env, anything)
    assert before.returncode == 0, before.stderr  # no DelegationPolicy: nothing is rejected
    env.post(
        "/apis/dops.io/v1alpha1/delegationpolicies",
        {
            "apiVersion": "dops.io/v1alpha1",
            "kind": "DelegationPolicy",
            "metadata": {"name": "tenants"},
            "spec": {
                "namespaces": [NS],
                "allowedImagePrefixes": ["registry.example.com/team-a/"],
                "allowedServiceAccounts": ["runner"],
                "allowSecretEnv": False,
                "allowedNodePlacementKeys": ["pool"],
                "allowImportPaths": False,
                "maxConcurrent": 4,
            },
        },
    )
    secret_env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    cases = [
        (
            dtarget("image", image="docker.io/evil:1"),
            "image docker.io/evil:1 is not allowed by DelegationPolicy tenants (allowed prefixes: "
            "registry.example.com/team-a/)",
        ),
        (
            dtarget("sa", podTemplate={"serviceAccountName": "default"}),
            "serviceAccountName default is not allowed by DelegationPolicy tenants (allowed: runner)",
        ),
        (
            dtarget("env", podTemplate={"env": secret_env}),
            "env from Secrets (TOKEN) is not allowed by DelegationPolicy tenants",
        ),
        (
            dtarget("placement", podTemplate={"nodeSelector": {"kubernetes.io/hostname": "n1"}}),
            "node placement keys are limited by DelegationPolicy tenants to: pool",
        ),
        (
            dtarget("imports", allowImportPaths=True),
            "allowImportPaths (py: operator URIs) is not allowed by DelegationPolicy tenants",
        ),
        (dtarget("greedy", maxConcurrent=50), "maxConcurrent 50 is above DelegationPolicy tenants's ceiling of 4"),
    ]
    deadline = time.monotonic() + 30
    while kubectl_apply(env, cases[0][0]).returncode == 0:  # the new parameter reaches admission within a moment
        assert time.monotonic() < deadline, "the DelegationPolicy was never enforced"
        env.admin.delete(env.url(f"/apis/dops.io/v1alpha1/namespaces/{NS}/delegationtargets/image"), timeout=10)
        time.sleep(0.3)
    for doc, message in cases:
        result = kubectl_apply(env, doc)
        assert result.returncode != 0, f"{doc['metadata']['name']} was accepted"
        assert f"DelegationTarget {NS}/{doc['metadata']['name']}: {message}" in result.stderr, result.stderr
    fine = dtarget(
        "fine",
        image="registry.example.com/team-a/worker:1",
        maxConcurrent=4,
        podTemplate={
            "serviceAccountName": "runner",
            "nodeSelector": {"pool": "gpu"},
            "env": [{"name": "A", "value": "1"}],
        },
    )
    accepted = kubectl_apply(env, fine)
    assert accepted.returncode == 0, accepted.stderr
    # the target created before the policy is now refused on any change (the operator refuses its operations)
    anything["spec"]["maxConcurrent"] = 1
    changed = kubectl_apply(env, anything)
    assert changed.returncode != 0 and "is not allowed by DelegationPolicy tenants" in changed.stderr


def test_the_policies_type_check_clean(sec_env: SecEnv) -> None:
    """The real API server type-checks each ValidatingAdmissionPolicy's CEL against the CRDs' schemas: no
    warnings (a misspelt field or a type error would be one, and would fail closed at admission)."""
    env = sec_env
    docs = [d for d in env.rendered if d["kind"].startswith("ValidatingAdmissionPolicy")]
    env.apply(docs)
    for doc in docs:
        if doc["kind"] != "ValidatingAdmissionPolicy":
            continue
        path = f"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/{doc['metadata']['name']}"
        deadline = time.monotonic() + 30
        while True:
            live = env.admin.get(env.url(path), timeout=10).json()
            status = live.get("status") or {}
            if status.get("observedGeneration") == live["metadata"]["generation"]:
                break
            assert time.monotonic() < deadline, f"{doc['metadata']['name']} was never type-checked: {status}"
            time.sleep(0.2)
        warnings = (status.get("typeChecking") or {}).get("expressionWarnings")
        assert not warnings, "\n".join(w["fieldRef"] + ": " + w["warning"] for w in warnings)


def test_an_editor_cannot_create_targets_retarget_running_operations_or_see_other_namespaces(
    sec_env: SecEnv,
) -> None:
    """A user bound to the built-in `edit` role in the namespace (the chart's dops-edit aggregates into it): may
    submit operations, but creating a DelegationTarget is RBAC's 403 (targets are `admin`'s), changing a running
    operation's target is the CRD's transition rule (422), and another namespace is RBAC's 403."""
    from tests.realcluster.pki import ClusterPKI

    env = sec_env
    env.post(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings",
        {
            "metadata": {"name": "ted-edit"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ted"}],
        },
    )
    pair = ClusterPKI.load(env.cluster.pki_dir).issue("sec-ted", "ted")
    ted = requests.Session()
    ted.trust_env = False
    ted.verify = str(env.cluster.ca_file)
    ted.cert = (str(pair.cert), str(pair.key))
    op = {
        "apiVersion": "dops.io/v1alpha1",
        "kind": "DelegatedOperation",
        "metadata": {"name": "teds"},
        "spec": {"operator": "@dops/examples/echo", "delegationTarget": "small"},
    }
    deadline = time.monotonic() + 30
    while True:  # the aggregation controller merges dops-edit into edit within a moment
        created = ted.post(env.url(OPS), json=op, timeout=10)
        if created.status_code == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert created.status_code == 201, created.text
    forbidden(
        ted.post(
            env.url(f"/apis/dops.io/v1alpha1/namespaces/{NS}/delegationtargets"), json=dtarget("mine"), timeout=10
        ),
        'User "ted" cannot create resource "delegationtargets"',
    )
    response = env.admin.patch(
        env.url(f"{OPS}/teds/status"), json={"status": {"runState": "running"}}, headers=MERGE, timeout=10
    )
    assert response.status_code == 200, response.text
    moved = ted.patch(env.url(f"{OPS}/teds"), json={"spec": {"delegationTarget": "big"}}, headers=MERGE, timeout=10)
    assert moved.status_code == 422, moved.text
    assert "spec.delegationTarget is immutable once the operation has left the queued state" in moved.text
    forbidden(
        ted.get(env.url("/apis/dops.io/v1alpha1/namespaces/default/delegatedoperations"), timeout=10),
        'User "ted" cannot list resource "delegatedoperations"',
    )
