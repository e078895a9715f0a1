"""Fixtures shared by all tiers: the control planes (embedded and real), real kubectl/helm, kubeconfig isolation.

A test that names the `plane` fixture (directly or through `kubectl`, `helm`, or a module's own
client fixtures) runs against the embedded control plane; in a module marked `both_planes` it runs
against the real upstream control plane too, as a second parameter. A test that names `emulator`
needs the embedded one (its fault hooks, access log, clock or settings) and runs there only. At the
end of the session the differential prints its fidelity figure (see `tests/fidelity.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from dops.emulator import EmbeddedServer, ServerSettings
from tests.helpers import CLI, find_binary
from tests.planes import CRD_FIXTURES, EmbeddedPlane, Plane, RealPlane
from tests.processes import interrupt_on_sigterm
from tests.realcluster.launcher import ClusterError, RealCluster

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.fidelity"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-e2e", action="store_true", default=False, help="run the kind end-to-end suite")
    parser.addoption(
        "--planes",
        choices=("both", "embedded", "real"),
        default=os.environ.get("DOPS_TEST_PLANES", "both"),
        help="control planes for `both_planes` modules (default: both; real needs Go or built binaries)",
    )
    parser.addoption(
        "--half",
        choices=("all", "embedded", "real"),
        default="all",
        help="run only the tests that use the real control plane (real) or only the others (embedded); "
        "scripts/run_tests.py runs both halves at once",
    )
    parser.addoption(
        "--shard",
        default="0/1",
        help="K/N: of the selected tests, keep the modules whose place in the sorted module list is K modulo N",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_planes: every `plane` test of the module runs on both control planes")
    config.addinivalue_line("markers", "gap(reason): the planes differ here on purpose; docs/GAPS.md says how")
    # A shell starts its background jobs (`make test &`, `nohup ...`) with SIGINT ignored, and every process
    # inherits that: the tests that press Ctrl-C on a CLI would then see it ignored, which no terminal user
    # does. Take Ctrl-C back as a terminal has it (it also lets Ctrl-C stop this run again).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # SIGTERM (a CI timeout, `kill`) stops the run as Ctrl-C does: Python's default would end this process at once,
    # and every control plane, operator and worker the fixtures and harnesses started would outlive it.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt_on_sigterm)


# Plane fixtures and their scope: `plane` is per test; `dops_plane` (tests/integration) is per module.
PLANE_FIXTURES = {"plane": "function", "dops_plane": "module", "cli_plane": "module"}
# Fixtures that are the embedded server itself: a test naming one runs on the embedded plane only.
EMBEDDED_ONLY_FIXTURES = ("emulator", "dops_server")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parameterise plane fixtures over both control planes in `both_planes` modules (embedded-only tests excepted)."""
    for fixture, scope in PLANE_FIXTURES.items():
        if fixture not in metafunc.fixturenames:
            continue
        wanted = metafunc.config.getoption("--planes")
        planes = ["embedded"]
        local = getattr(metafunc.module, "EMBEDDED_ONLY_FIXTURES", ())  # a module may name its own
        embedded_only = any(name in metafunc.fixturenames for name in (*EMBEDDED_ONLY_FIXTURES, *local))
        if metafunc.definition.get_closest_marker("both_planes") and not embedded_only:
            planes = {"both": ["embedded", "real"], "embedded": ["embedded"], "real": ["real"]}[wanted]
        metafunc.parametrize(fixture, planes, indirect=True, scope=scope)  # type: ignore[arg-type]


# Fixtures through which a test reaches the real control plane (besides a `real` plane parameter).
REAL_PLANE_FIXTURES = ("real_cluster", "real_plane", "realplane_cluster")


# Measured seconds per module of each half (scripts/module_seconds.py from a run with --durations=0): `make test`'s
# shards of a half (scripts/run_tests.py) get its modules longest first, each to the shard with the least time so
# far, so the processes end close together. A module the file does not know counts as UNMEASURED_MODULE_SECONDS.
# (The real-plane chaos run starts a control plane of its own, `real_binaries`: it is dealt with the embedded
# modules.)
MODULE_SECONDS = Path(__file__).parent / "module_seconds.json"
UNMEASURED_MODULE_SECONDS = 5.0


def balanced(modules: list[str], shards: int, seconds: dict[str, float]) -> dict[str, int]:
    """module → shard: longest first into the shard with the least seconds so far (ties: the lower shard, then the
    module name), so that equal inputs always give the same shards."""

    def cost(module: str) -> float:
        return seconds.get(module, UNMEASURED_MODULE_SECONDS)

    place: dict[str, int] = {}
    load = [0.0] * shards
    for module in sorted(set(modules), key=lambda m: (-cost(m), m)):
        shard = min(range(shards), key=lambda k: (load[k], k))
        place[module] = shard
        load[shard] += cost(module)
    return place


def module_seconds(half: str) -> dict[str, float]:
    """The measured seconds of `half`'s modules ({} when the file is missing or unreadable)."""
    try:
        measured = json.loads(MODULE_SECONDS.read_text()).get(half)
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): float(v) for k, v in measured.items()} if isinstance(measured, dict) else {}


def uses_real_plane(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and any(callspec.params.get(name) == "real" for name in PLANE_FIXTURES):
        return True
    return any(name in getattr(item, "fixturenames", ()) for name in REAL_PLANE_FIXTURES)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--half real|embedded`: keep the tests that use the real control plane, or the others; `--shard K/N`: keep
    the K-th of N shards of them, by module, balanced by the measured seconds of MODULE_SECONDS."""
    half = config.getoption("--half")
    shard, shards = (int(n) for n in config.getoption("--shard").split("/"))
    if half == "all" and shards == 1:
        return
    keep = [item for item in items if half == "all" or uses_real_plane(item) == (half == "real")]
    modules = sorted({item.nodeid.split("::")[0] for item in keep})
    place = balanced(modules, shards, module_seconds("real" if half == "real" else "embedded"))
    keep = [item for item in keep if place[item.nodeid.split("::")[0]] == shard]
    kept = {id(item) for item in keep}
    dropped = [item for item in items if id(item) not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def real_plane_unavailable() -> str | None:
    """Why the real control plane cannot run here (None when it can)."""
    if os.environ.get("DOPS_TEST_PLANES") == "embedded":
        return "DOPS_TEST_PLANES=embedded"
    from scripts.build_k8s import cache_root, kubernetes_version

    built = cache_root() / kubernetes_version() / "bin" / "kube-apiserver"
    if shutil.which("go") is None and not built.exists():
        return "no Go toolchain on PATH to build it (install Go 1.25+; `make k8s`)"
    return None


@pytest.fixture(scope="session")
def real_binaries() -> Path:
    """The upstream binaries' directory, built if needed (the test skips with one line where they cannot be).

    For a module that starts a control plane of its own (other controller flags): it does not need the session's
    cluster, so it is dealt to a shard with the embedded modules (see MODULE_SECONDS)."""
    reason = real_plane_unavailable()
    if reason:
        pytest.skip(f"real control plane skipped: {reason}")
    from scripts.build_k8s import BuildError, build

    try:
        return build(quiet=True)
    except BuildError as exc:
        pytest.fail(f"real control plane: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def real_cluster(real_binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """The session's real control plane (etcd, kube-apiserver, controller manager, scheduler), built if needed."""
    try:
        cluster = RealCluster.start(real_binaries, root=tmp_path_factory.mktemp("realcluster"))
    except ClusterError as exc:
        pytest.fail(f"real control plane: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def real_plane(real_cluster: RealCluster) -> RealPlane:
    return RealPlane(real_cluster)


@pytest.fixture
def plane(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plane]:
    """The control plane under test; KUBECONFIG points at it for the test's duration."""
    if getattr(request, "param", "embedded") == "real":
        real: RealPlane = request.getfixturevalue("real_plane")
        real.begin_test(reuses_crds=bool(CRD_FIXTURES & set(request.fixturenames)))
        monkeypatch.setenv("KUBECONFIG", str(real.kubeconfig))
        try:
            yield real
        finally:
            real.reset()
        return
    settings = ServerSettings(bookmark_interval=1.0)
    with EmbeddedServer.run_in_thread(settings) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        server.kubeconfig = kubeconfig  # type: ignore[attr-defined]
        yield EmbeddedPlane(server, kubeconfig)


@pytest.fixture
def emulator(plane: Plane) -> EmbeddedServer:
    """A fresh embedded API server in a background thread; KUBECONFIG points at it."""
    assert isinstance(plane, EmbeddedPlane), "tests naming `emulator` run on the embedded control plane only"
    return plane.server


def _cli(name: str, kubeconfig: Path, tmp_path: Path) -> CLI:
    binary = find_binary(name)
    if binary is None:
        pytest.skip(f"{name} binary not available: run `python scripts/fetch_clients.py` (make test does)")
    home = tmp_path / f"{name}-home"
    home.mkdir(exist_ok=True)
    return CLI(binary, kubeconfig, home, {})


@pytest.fixture
def kubectl(plane: Plane, tmp_path: Path) -> CLI:
    return _cli("kubectl", plane.kubeconfig, tmp_path)


@pytest.fixture
def helm(plane: Plane, tmp_path: Path) -> CLI:
    return _cli("helm", plane.kubeconfig, tmp_path)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


os.environ.setdefault("DOPS_TESTING", "1")
