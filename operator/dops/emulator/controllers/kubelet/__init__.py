"""The embedded kubelet: one fake node whose pods run as local processes or simulated stages.

`Kubelet(api, **options)` is the controller registered as "kubelet" (see controllers/__init__.py);
options are the fields of `KubeletOptions` (config.py, which also documents the image map).

The node agent (dops.emulator.node) is the same kubelet for any API server, so the parts are laid
out for both: runtime.py (per-pod state, status rules), lifecycle.py (the pod state machine,
`PodLifecycle`), process.py / logs.py / env.py / node.py (processes, CRI logs, environment, the
Node object); controller.py only binds `PodLifecycle` to the embedded API server.
"""

from .config import KubeletOptions
from .controller import Kubelet

__all__ = ["Kubelet", "KubeletOptions"]
