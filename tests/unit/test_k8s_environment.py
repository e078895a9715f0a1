"""KubeClient reads the proxy and CA-bundle variables once, when its session starts (dops.k8s.client).

Why: `requests` re-reads the environment (proxy variables, NO_PROXY, ~/.netrc) on every request, about a
twentieth of the operator's CPU; the session now settles it once. These tests pin that the variables still
work as before for requests sent afterwards:

- HTTP_PROXY sends the request through the proxy (the proxy sees the absolute URL);
- NO_PROXY naming the server goes direct;
- a variable set after the session started no longer counts (the process's configuration is read at start);
- REQUESTS_CA_BUNDLE replaces the system CAs (a kubeconfig's own CA is set by pykube's adapter on every
  request, over whatever the session holds, as before).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dops.k8s import ApiUnavailable, KubeClient, load_config

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}


class Recorder(BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = json.dumps(NAMESPACE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server answering every GET with a Namespace; yields its URL and the request lines seen."""
    seen: list[str] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def kubeconfig(tmp_path: Path, server: str) -> Path:
    cluster = f"{{server: '{server}'}}"
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {cluster}}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    return path


@pytest.fixture(autouse=True)
def clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_a_proxy_variable_sends_requests_through_the_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with http_server() as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        client = KubeClient(load_config(kubeconfig(tmp_path, "http://kube.invalid:6443")), retries=0, timeout=5)
        assert client.request("GET", "/api/v1/namespaces/default")["metadata"]["name"] == "default"
        assert client.request("GET", "/api/v1/namespaces/default")["kind"] == "Namespace"
    assert seen == ["http://kube.invalid:6443/api/v1/namespaces/default"] * 2  # absolute URLs: a proxy's requests


def test_no_proxy_naming_the_server_goes_direct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with http_server() as (server, direct), http_server() as (proxy, proxied):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        client = KubeClient(load_config(kubeconfig(tmp_path, server)), retries=0, timeout=5)
        assert client.request("GET", "/api/v1/namespaces/default")["kind"] == "Namespace"
    assert direct == ["/api/v1/namespaces/default"] and proxied == []


def test_the_environment_is_read_when_the_session_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with http_server() as (proxy, seen):
        client = KubeClient(load_config(kubeconfig(tmp_path, "http://kube.invalid:6443")), retries=0, timeout=5)
        with pytest.raises(ApiUnavailable):
            client.request("GET", "/api/v1/namespaces/default")  # no proxy: kube.invalid does not resolve
        monkeypatch.setenv("HTTP_PROXY", proxy)
        with pytest.raises(ApiUnavailable):
            client.request("GET", "/api/v1/namespaces/default")  # this thread's session started without one
        fresh = KubeClient(load_config(kubeconfig(tmp_path, "http://kube.invalid:6443")), retries=0, timeout=5)
        assert fresh.request("GET", "/api/v1/namespaces/default")["kind"] == "Namespace"
    assert seen == ["http://kube.invalid:6443/api/v1/namespaces/default"]


def test_a_ca_bundle_variable_replaces_the_system_cas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("bundle")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    client = KubeClient(load_config(kubeconfig(tmp_path, "https://kube.invalid:6443")))
    assert client._http().session.verify == str(bundle)
