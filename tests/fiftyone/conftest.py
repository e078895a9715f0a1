"""Fixtures for the FiftyOne suite: FiftyOne's real service over mongomock, dops' service and FiftyOne's
service over the bridge, each on an empty store per test.

The whole directory needs the `fiftyone` extra (`pip install -e '.[fiftyone]'`, which `make test` installs);
without it the directory is skipped with one line. FiftyOne is imported with its database client replaced by
mongomock (as nothing here may start a mongod) and an empty plugins directory of its own.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"
HAVE_FIFTYONE = importlib.util.find_spec("fiftyone") is not None and importlib.util.find_spec("mongomock") is not None

if not HAVE_FIFTYONE:
    # One line, not one per test: the modules are not even collected.
    collect_ignore_glob = ["test_*.py"]

    def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        del items
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                "tests/fiftyone: skipped, the fiftyone extra is not installed (pip install -e '.[fiftyone]')"
            )
else:
    # Before FiftyOne is imported: its plugins come from the tests' own directory, its config from nowhere else.
    os.environ.setdefault("FIFTYONE_PLUGINS_DIR", str(PLUGINS))
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_CONFIG_PATH", str(Path(tempfile.mkdtemp()) / "config.json"))

    import mongomock
    from fiftyone.core.odm import database as _fo_database

    # FiftyOne's database is mongomock: ExecutionContext.dataset and friends look there instead of starting mongod.
    _fo_database._client = mongomock.MongoClient()
    _fo_database._is_client_closed = lambda client: client is None  # type: ignore[assignment]

    from dops import DelegatedOperationService
    from dops.emulator import EmbeddedServer, ServerSettings
    from dops.emulator.bootstrap import apply_manifest_paths
    from dops.k8s import DelegatedOperationRepository, KubeClient, load_config

    @pytest.fixture(scope="module")
    def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
        """One embedded control plane with the dops CRDs per module (a fresh namespace per test)."""
        with EmbeddedServer.run_in_thread(ServerSettings(history_size=50_000)) as server:
            server.call(lambda: apply_manifest_paths(server.api, [REPO / "crds"]))
            server.kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")  # type: ignore[attr-defined]
            yield server

    @pytest.fixture(scope="module")
    def kube(embedded: Any) -> Iterator[KubeClient]:
        client = KubeClient(load_config(embedded.kubeconfig))
        yield client
        client.close()

    @pytest.fixture
    def namespace(kube: KubeClient) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        kube.request(
            "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        return name

    @pytest.fixture
    def dops_service(kube: KubeClient, namespace: str) -> DelegatedOperationService:
        return DelegatedOperationService(DelegatedOperationRepository(kube), namespace=namespace)

    @pytest.fixture
    def fiftyone_service() -> Any:
        """FiftyOne's own DelegatedOperationService over its Mongo repo on a fresh mongomock collection."""
        from fiftyone.factory.repos.delegated_operation import MongoDelegatedOperationRepo
        from fiftyone.operators.delegated import DelegatedOperationService as FoService

        collection = mongomock.MongoClient().db[f"delegated_ops_{uuid.uuid4().hex[:8]}"]
        # MongoDB's findAndModify is atomic; mongomock's is a read then a write, so two racing compare-and-sets
        # could both win. One lock restores MongoDB's guarantee for the race scenarios.
        atomic = threading.Lock()
        for method in ("find_one_and_update", "find_one_and_delete", "update_one"):
            setattr(collection, method, _locked(atomic, getattr(collection, method)))
        return FoService(repo=MongoDelegatedOperationRepo(collection=collection))

    def _locked(lock: threading.Lock, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return fn(*args, **kwargs)

        return call

    @pytest.fixture
    def bridge_service(dops_service: DelegatedOperationService) -> Any:
        """FiftyOne's own DelegatedOperationService over the dops bridge (its store: the embedded plane)."""
        from fiftyone.operators.delegated import DelegatedOperationService as FoService

        from dops.fiftyone import DopsDelegatedOperationRepo

        return FoService(repo=DopsDelegatedOperationRepo(dops_service))
