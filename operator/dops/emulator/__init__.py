"""dops.emulator: an embedded Kubernetes control plane for tests and `dops dev`.

It serves the Kubernetes API that kopf, kubectl, helm, the kubernetes client and pykube-ng
need (see docs/GAPS.md for what it does not emulate). It is independent of the rest of dops:
nothing here imports the operator, and the operator never imports this package.
"""

from .server import EmbeddedServer, ServerSettings, kubeconfig_yaml

__all__ = ["EmbeddedServer", "ServerSettings", "kubeconfig_yaml"]
