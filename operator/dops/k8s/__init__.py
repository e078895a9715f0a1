"""The Kubernetes gateway: the only dops package that talks to the API server.

Two client libraries, two roles:

- **pykube-ng** (`KubeClient`, `ResourceClient`, the DelegatedOperation/DelegationTarget
  repositories): the dict-based hot path for dops' own custom resources. pykube-ng contributes its
  kubeconfig parsing and authenticating `requests` session; dops sends plain JSON on it (merge and
  JSON patches, `/status`, selectors, paging, Tables), which costs one request and one `json` decode
  per call, with no model classes in between.
- **the official `kubernetes` client** (`ClusterConfig.api_client()`): typed access to built-in
  resources the operator needs (batch/v1 Jobs, Pods, pod logs, core/v1 Events), where its models,
  log streaming and watch helpers pay off.

Both are built from one `ClusterConfig` (`load_config()`: kubeconfig or in-cluster service account).
Errors from either are mapped to the tree in `dops.k8s.errors` (`NotFound`, `Conflict`,
`AlreadyExists`, `Invalid`, `Gone`, `ApiUnavailable`, ...), each carrying the parsed `Status`; no
`requests`/`pykube`/`kubernetes` exception leaves this package.

Known limitation: pykube-ng runs exec credential plugins on every request (no token caching).
"""

from __future__ import annotations

from .client import KubeClient
from .config import ClusterConfig, bearer_config, in_cluster_endpoint, load_config
from .errors import (
    AlreadyExists,
    ApiError,
    ApiUnavailable,
    BadRequest,
    ConfigurationError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubernetesError,
    MethodNotAllowed,
    NotFound,
    RequestTooLarge,
    ServerError,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    error_from_response,
)
from .resources import (
    DelegatedOperationRepository,
    DelegationTargetRepository,
    ListPage,
    ResourceClient,
    TablePage,
)

__all__ = [
    "AlreadyExists",
    "ApiError",
    "ApiUnavailable",
    "BadRequest",
    "ClusterConfig",
    "ConfigurationError",
    "Conflict",
    "DelegatedOperationRepository",
    "DelegationTargetRepository",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeClient",
    "KubernetesError",
    "ListPage",
    "MethodNotAllowed",
    "NotFound",
    "RequestTooLarge",
    "ResourceClient",
    "ServerError",
    "TablePage",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "bearer_config",
    "error_from_response",
    "in_cluster_endpoint",
    "load_config",
]
