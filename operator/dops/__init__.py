"""dops: Kubernetes-native delegated operations."""

__version__ = "0.1.0"
