"""The node agent: the embedded kubelet's runtime as a process that joins any API server as a node.

The embedded control plane runs pods through its in-process kubelet; a real control plane
(kube-apiserver, scheduler, controller manager: tests/realcluster) has no kubelet at all, and no
container runtime exists on the machines dops is tested on. `python -m dops.emulator.node
--kubeconfig K --name N` fills that gap: it registers node N with the API server of K and runs the
pods scheduled to it as local process groups, with the same image map, process runtime, logs and
status rules as the embedded kubelet (controllers/kubelet). See docs/node-agent.md.

Like the rest of dops.emulator it never imports product code: it is test infrastructure that
must behave like Kubernetes, not like dops.
"""

from .agent import AgentOptions, NodeAgent

__all__ = ["AgentOptions", "NodeAgent"]
