"""The embedded kubelet: one fake node whose pods run as local processes or simulated stages.

`Kubelet(api, **options)` is the controller registered as "kubelet" (see controllers/__init__.py);
options are the fields of `KubeletOptions` (config.py, which also documents the image map).
"""

from .config import KubeletOptions
from .controller import Kubelet

__all__ = ["Kubelet", "KubeletOptions"]
