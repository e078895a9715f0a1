"""The real upstream control plane as test infrastructure: build pin in hack/k8s, launcher, CLI.

`python -m tests.realcluster up|down|status` from the checkout; tests use the fixtures in
tests/conftest.py. Never imported by product code (it is not part of the dops package).
"""

from tests.realcluster.launcher import ClusterError, RealCluster, running

__all__ = ["ClusterError", "RealCluster", "running"]
