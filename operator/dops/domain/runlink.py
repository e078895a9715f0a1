"""`status.runLink`: where a human follows a run (pure).

By default the link is the worker pod's log through the API server,
`<server>/api/v1/namespaces/NS/pods/POD/log?container=worker`, which `kubectl get --raw`, `curl`
with a token, or the kubernetes client can read while the pod exists. A template (the target's
`runLinkTemplate`, else `DOPS_RUN_LINK_TEMPLATE`) replaces it, e.g. a Grafana/Loki or console URL:
placeholders `{namespace}`, `{pod}`, `{job}`, `{operation}`, `{container}`, `{attempt}`.

The operator knows everything but the pod name when it creates the Job, so it renders the link with
the pod name as `$(DOPS_POD_NAME)` into the worker's env `DOPS_RUN_LINK`; the kubelet expands it, and
the worker stores it when it claims the operation. The operator renders the full link itself as a
fallback when the worker did not set one.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from ..api import constants as c

WORKER_CONTAINER = "worker"
DEFAULT_TEMPLATE = "{server}/api/v1/namespaces/{namespace}/pods/{pod}/log?container={container}"
PLACEHOLDERS = ("namespace", "pod", "job", "operation", "container", "attempt")


class _Partial(dict[str, str]):
    """format_map mapping that leaves unknown placeholders as they are (`{pod}` stays `{pod}`)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def default_template(server_url: str) -> str:
    """The API-server pod-log link with `{namespace}`/`{pod}`/`{container}` left to fill."""
    server = server_url.rstrip("/")
    return DEFAULT_TEMPLATE.replace("{server}", server.replace("{", "{{").replace("}", "}}"))


def effective_template(target_template: str | None, settings_template: str, server_url: str) -> str:
    """The target's template, else the operator's, else the API-server pod-log link."""
    return target_template or settings_template or default_template(server_url)


def _values(values: Mapping[str, object]) -> dict[str, str]:
    return {k: quote(str(v), safe="") for k, v in values.items() if v is not None and v != ""}


def render_run_link(template: str, **values: object) -> str:
    """The run link from `template` and `values` (namespace, pod, job, operation, container, attempt).

    Unfilled placeholders stay literally. Raises ValueError for a malformed template or a link
    longer than the status field allows (2048 characters).
    """
    try:
        link = template.format_map(_Partial(_values({"container": WORKER_CONTAINER, **values})))
    except (ValueError, IndexError) as exc:
        raise ValueError(f"invalid run-link template {template!r}: {exc}") from exc
    if len(link) > c.MAX_RUN_LINK_CHARS:
        raise ValueError(f"run link is longer than {c.MAX_RUN_LINK_CHARS} characters")
    return link


def pod_log_path(namespace: str, pod: str, container: str = WORKER_CONTAINER) -> str:
    """The API path of a pod's log (relative to the server URL)."""
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/log?container={container}"
