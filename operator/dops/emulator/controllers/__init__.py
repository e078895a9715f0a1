"""Controllers the embedded control plane runs (what envtest lacks): Job, Deployment, GC, namespaces, kubelet.

Each is switched on by name (`--controllers=job,gc` / `ServerSettings.controllers`) so a test can
run without some of them, e.g. to write Job status by hand.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..apiserver import ApiServer
    from .base import Controller

# name → (module, class). Order matters only for start-up logs.
CONTROLLERS: dict[str, tuple[str, str]] = {
    "namespace": (".namespace", "NamespaceController"),
    "gc": (".gc", "GarbageCollector"),
    "job": (".job", "JobController"),
    "deployment": (".deployment", "DeploymentController"),
    "kubelet": (".kubelet", "Kubelet"),
}
ALL = tuple(CONTROLLERS)


def build(name: str, api: ApiServer, options: dict[str, Any]) -> Controller:
    """Instantiate the controller called `name` with the options meant for it."""
    if name not in CONTROLLERS:
        raise ValueError(f"unknown controller {name!r}; choose from: {', '.join(CONTROLLERS)}")
    module_name, class_name = CONTROLLERS[name]
    module = importlib.import_module(module_name, __name__)
    cls = getattr(module, class_name)
    controller: Controller = cls(api, **options.get(name, {}))
    return controller
