"""The one HTTP choke point for dict-based API access (custom resources), over pykube-ng's session.

`KubeClient.request()` sends a request with pykube-ng's `requests` session (which carries the
kubeconfig's TLS settings and credentials), decodes JSON, maps errors to `dops.k8s.errors`, and
retries what is safe to retry:

- connection failures before the request reached the server: every verb (nothing was applied;
  creates use client-generated names, so even an ambiguous retry yields 409, never a duplicate);
- 429 and 503/504 answers (the server refused the request): every verb, honouring `Retry-After`;
- read timeouts / dropped connections after sending: GET only. A retried JSON Patch whose `test`
  already succeeded would fail its own test and be mistaken for a lost race, so writes surface
  `ApiUnavailable` instead.

- 401 with a service-account token: the token file is re-read (the kubelet rotates projected tokens)
  and the request sent once more when the token changed; the file is also re-read every minute
  (`ClusterConfig.refresh_token`), so a rotated token is used before the old one expires.

Sessions are per thread (requests sessions are not documented as thread-safe), so one client can be
shared by threads, as the FiftyOne service is.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pykube
import requests
import urllib3

from .config import ClusterConfig, load_config
from .errors import ApiError, ApiUnavailable, NotFound, ServerError, TooManyRequests, error_from_response

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
USER_AGENT = "dops/0.1 (pykube-ng)"


def settle_environment(session: requests.Session, server: str) -> None:
    """Read once what `requests` would read from the environment on every request, then stop it reading.

    With `trust_env` a session looks up the proxy variables (scanning all of `os.environ`), `NO_PROXY` and
    `~/.netrc` for every request: about a twentieth of the operator's CPU. Proxies and a CA bundle variable
    are as much the process's configuration as the kubeconfig is, read when it starts (client-go's proxy
    choice too is fixed per transport); a kubeconfig CA keeps precedence over `REQUESTS_CA_BUNDLE`."""
    found = session.merge_environment_settings(server, {}, None, None, None)
    session.proxies.update(found.get("proxies") or {})
    if session.verify is True and isinstance(found.get("verify"), str):
        session.verify = found["verify"]
    session.trust_env = False


class KubeClient:
    """Dict-in, dict-out access to the Kubernetes API (thread-safe)."""

    def __init__(
        self,
        config: ClusterConfig | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_delay: float = 5.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.config = config or load_config()
        self.user_agent = user_agent  # the operator and the worker identify themselves differently
        self.namespace = self.config.namespace
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_delay = max_delay  # cap on one wait, Retry-After included
        self._local = threading.local()
        self._base = self.config.server

    def _http(self) -> pykube.HTTPClient:
        client: pykube.HTTPClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self.config.http_client(timeout=self.timeout)
            client.session.headers["User-Agent"] = self.user_agent
            settle_environment(client.session, self._base)
            self._local.client = client
        return client

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            client.session.close()
            self._local.client = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON_TYPE,
        accept: str = JSON_TYPE,
        object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
    ) -> Any:
        """Send one request; returns the decoded JSON body (None when empty); raises a gateway ApiError.

        `object_pairs_hook` is `json.loads`'s: it lets a caller that needs little of a large body drop the rest
        while decoding (see `ResourceClient.count`).
        """
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        query = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        attempt = 0
        reauthenticated = False
        self.config.refresh_token()  # cheap: re-reads the token file at most once a minute
        while True:
            try:
                response = self._http().session.request(
                    method, self._base + path, params=query, data=data, headers=headers, timeout=self.timeout
                )
            except requests.exceptions.RequestException as exc:
                if attempt < self.retries and (_never_sent(exc) or method == "GET"):
                    attempt += 1
                    self._sleep(attempt, None)
                    continue
                raise ApiUnavailable(
                    f"cannot reach the API server at {self._base}: {exc}", method=method, path=path
                ) from exc
            except Exception as exc:  # credential plugins and the like
                raise ApiUnavailable(f"request to {self._base} failed: {exc!r}", method=method, path=path) from exc
            code = response.status_code
            if code < 400:
                if not response.content:
                    return None
                try:
                    if object_pairs_hook is not None:
                        return json.loads(response.content, object_pairs_hook=object_pairs_hook)
                    return response.json()
                except ValueError as exc:
                    raise ServerError(
                        f"the API server sent a body that is not JSON: {response.text[:200]!r}",
                        code=code,
                        method=method,
                        path=path,
                    ) from exc
            if code == 401 and not reauthenticated and self.config.refresh_token(force=True):
                # Rejected, and the token file holds a newer token: the old one expired or was revoked.
                reauthenticated = True
                log.info("%s %s: 401 Unauthorized; retrying with the re-read service-account token", method, path)
                continue
            retry_after = _retry_after(response.headers.get("Retry-After"))
            if code in (429, 503, 504) and attempt < self.retries:
                attempt += 1
                self._sleep(attempt, retry_after)
                continue
            try:
                decoded: Any = response.json()
            except ValueError:
                decoded = response.text
            error = error_from_response(code, decoded, method=method, path=path, retry_after=retry_after)
            if isinstance(error, TooManyRequests | ServerError) and code in (429, 503, 504):
                raise ApiUnavailable(
                    error.message, code=code, reason=error.reason, status=error.status, method=method, path=path
                ) from error
            raise error

    def served_resources(self, group: str, version: str) -> set[str]:
        """The resource names discovery lists for `group`/`version` (subresources excluded); empty when the
        group version is not served (404: no CRD). An API server that has not registered the group yet answers
        503 for a moment after it starts: that is retried, then raised as `ApiUnavailable`, like any 503."""
        try:
            body = self.request("GET", f"/apis/{group}/{version}")
        except NotFound:
            return set()
        return {r["name"] for r in (body or {}).get("resources") or () if "/" not in r.get("name", "/")}

    def _sleep(self, attempt: int, retry_after: float | None) -> None:
        delay = retry_after if retry_after is not None else self.backoff * (3 ** (attempt - 1))
        time.sleep(min(delay, self.max_delay))


def _never_sent(exc: requests.exceptions.RequestException) -> bool:
    """True when the request cannot have been applied: no connection, or a pooled keep-alive
    connection the server had already closed (it answers before it closes, so it never read it)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError) or isinstance(exc, requests.exceptions.ReadTimeout):
        return False
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", inner)
    if isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
        return True
    if isinstance(reason, urllib3.exceptions.ProtocolError) and reason.args:
        cause = reason.args[-1]
        return isinstance(cause, http.client.RemoteDisconnected | ConnectionRefusedError)
    return False


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


__all__ = ["JSON_PATCH", "MERGE_PATCH", "TABLE_ACCEPT", "ApiError", "KubeClient"]
