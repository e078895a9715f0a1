"""Controllers the embedded control plane runs (what envtest lacks): Job, Deployment, GC, namespaces, kubelet."""
