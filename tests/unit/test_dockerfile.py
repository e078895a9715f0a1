"""Invariants of the dops image (Dockerfile, .dockerignore) that can be checked without Docker.

Issue 6: "multi-stage (build a wheel, install into a slim Python runtime), non-root UID, no compilers in the final
image, ENTRYPOINT running `dops`, used both as the operator image (`dops operator`) and as the default worker image
(`dops worker run …`); `.dockerignore`. A test checks the Dockerfile's invariants that can be checked without
Docker (non-root USER, pinned base tag, entrypoint resolves to an installed console script)."

Covered:
- multi-stage: a build stage that builds wheels from pyproject.toml + operator/, and a final runtime stage that
  does not derive from the build stage and installs only those prebuilt wheels (`--no-index`);
- every external base image is pinned: an explicit tag, never `latest` (ARG defaults resolved), or a digest;
- the final stage runs as a numeric non-root USER (uid and gid ≠ 0), set after the last RUN;
- no compilers or -dev toolchains are installed after the last FROM (apt-get/apk/yum/dnf/pip);
- ENTRYPOINT is the exec form ["dops"], CMD ["operator"]; `dops` is declared in pyproject.toml
  [project.scripts] (looked up at test time) and its `module:function` target exists and is callable;
- every COPY source from the build context exists and is not excluded by .dockerignore;
- .dockerignore excludes .git, .venv, tests (and caches).
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

COMPILERS = {
    "gcc",
    "g++",
    "cc",
    "c++",
    "clang",
    "make",
    "cmake",
    "build-essential",
    "build-base",
    "musl-dev",
    "libc-dev",
    "libc6-dev",
    "python3-dev",
    "python-dev",
    "rustc",
    "cargo",
    "gfortran",
    "cython",
}
PACKAGE_MANAGER_INSTALL = re.compile(
    r"\b(?:apt-get|apt|apk|yum|dnf|microdnf|pip3?|python3?\s+-m\s+pip|uv\s+pip)\s+(?:[-\w=]+\s+)*(?:install|add)\b(?P<args>[^;&|]*)"
)


@dataclass
class Instruction:
    keyword: str
    value: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages). Handles line continuations, comments and `FROM … AS name`."""
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by BuildKit
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1].rstrip() + " "
            continue
        buffer += stripped
        keyword, _, value = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip(), start))
        buffer = ""
    assert not buffer, "Dockerfile ends inside a line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for inst in instructions:
        if inst.keyword == "FROM":
            words = [w for w in inst.value.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            assert len(words) in (1, 3), f"line {inst.line}: cannot parse FROM {inst.value!r}"
            stages.append(Stage(words[0], name, inst.line))
        elif not stages:
            assert inst.keyword == "ARG", f"line {inst.line}: only ARG may precede the first FROM"
            arg_name, _, default = inst.value.partition("=")
            args[arg_name] = default.strip("\"'")
        else:
            stages[-1].instructions.append(inst)
    return args, stages


def substitute(value: str, args: dict[str, str]) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert args.get(name), f"${name} has no default ARG value: the base image is not pinned"
        return args[name]

    return re.sub(r"\$\{(\w+)(?::-[^}]*)?\}|\$(\w+)", repl, value)


def exec_form(inst: Instruction) -> list[str]:
    value = json.loads(inst.value)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), inst
    return value


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(dockerfile: tuple[dict[str, str], list[Stage]]) -> Stage:
    return dockerfile[1][-1]


def pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_parser_understands_continuations_and_stages() -> None:
    """The little Dockerfile parser used below (so the invariants are not vacuous)."""
    args, stages = parse_dockerfile(
        "ARG PY=3.11.9\nFROM python:${PY}-slim AS build\nRUN a \\\n    # note\n    && b\nFROM scratch\nUSER 1:1\n"
    )
    assert args == {"PY": "3.11.9"}
    assert [(s.base, s.name) for s in stages] == [("python:${PY}-slim", "build"), ("scratch", None)]
    assert stages[0].all("RUN")[0].value == "a && b"
    assert substitute(stages[0].base, args) == "python:3.11.9-slim"


def test_multi_stage_build_then_runtime(dockerfile: tuple[dict[str, str], list[Stage]], final: Stage) -> None:
    """Issue 6: a build stage makes wheels from the project; the runtime stage is a fresh base, not the build stage."""
    _, stages = dockerfile
    assert len(stages) >= 2, "expected a build stage and a runtime stage"
    names = {s.name for s in stages[:-1] if s.name}
    assert names, "the build stage should be named (FROM … AS build)"
    assert final.base not in names, "the runtime stage must start from a clean base, not from the build stage"
    build_text = " ".join(i.value for s in stages[:-1] for i in s.instructions)
    assert "pyproject.toml" in build_text and "operator" in build_text, "the build stage copies the project"
    assert re.search(r"pip wheel|python -m build|uv build", build_text), "the build stage builds wheels"
    final_runs = " ".join(i.value for i in final.all("RUN"))
    assert re.search(r"pip install [^;&]*--no-index", final_runs), "the runtime installs only prebuilt wheels"
    assert any(re.search(r"from=(\w+)", i.value) for i in final.instructions), "the runtime uses the build's wheels"


def test_base_images_are_pinned(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """Every external base image has an explicit tag other than `latest` (or a digest)."""
    args, stages = dockerfile
    seen: set[str] = set()
    for stage in stages:
        base = substitute(stage.base, args)
        if base in seen or base == "scratch":
            seen.add(stage.name or "")
            continue
        if "@sha256:" not in base:
            last = base.rsplit("/", 1)[-1]
            assert ":" in last, f"line {stage.line}: base image {base!r} has no tag"
            tag = last.split(":", 1)[1]
            assert tag and tag != "latest", f"line {stage.line}: base image {base!r} is not pinned"
            assert re.search(r"\d+\.\d+", tag), f"line {stage.line}: tag {tag!r} should pin a version (x.y…)"
        seen.add(stage.name or "")


def test_final_stage_runs_as_numeric_non_root(final: Stage) -> None:
    """The runtime stage ends as a numeric, non-root USER (PodSecurity runAsNonRoot can verify a numeric uid)."""
    users = final.all("USER")
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user.value), f"USER {user.value!r} is not numeric uid[:gid]"
    uid, _, gid = user.value.partition(":")
    assert int(uid) != 0 and (not gid or int(gid) != 0), "USER must not be root"
    assert int(uid) == 65532, "the chart's securityContext runs as 65532"
    runs_after = [i for i in final.instructions if i.keyword == "RUN" and i.line > user.line]
    assert runs_after == [], "no RUN after the final USER (it would run as non-root and fail, or re-escalate)"


def test_no_compilers_in_the_final_stage(final: Stage) -> None:
    """No compilers or build toolchains are installed after the last FROM."""
    for inst in final.all("RUN"):
        for match in PACKAGE_MANAGER_INSTALL.finditer(inst.value):
            packages = {w.split("=")[0] for w in shlex.split(match.group("args")) if not w.startswith("-")}
            assert not packages & COMPILERS, f"line {inst.line}: installs {sorted(packages & COMPILERS)}"
            assert not any(p.endswith("-dev") or p.endswith("-devel") for p in packages), f"line {inst.line}"


def test_package_manager_regex_catches_compilers() -> None:
    """The detector used above does see a compiler install (so the previous test can fail)."""
    text = "apt-get update && apt-get install -y --no-install-recommends gcc libpq-dev && rm -rf /var/lib/apt"
    found = {w for m in PACKAGE_MANAGER_INSTALL.finditer(text) for w in shlex.split(m.group("args"))}
    assert {"gcc", "libpq-dev"} <= found


def test_entrypoint_is_the_dops_console_script(final: Stage) -> None:
    """ENTRYPOINT ["dops"] (exec form), CMD ["operator"]: the image runs `dops operator` by default and
    `dops worker run NS/NAME` when a Job passes those args."""
    entrypoints = final.all("ENTRYPOINT")
    assert entrypoints, "the final stage has no ENTRYPOINT"
    assert exec_form(entrypoints[-1]) == ["dops"]
    cmds = final.all("CMD")
    assert cmds and exec_form(cmds[-1]) == ["operator"]


def test_dops_console_script_is_declared_and_resolves() -> None:
    """`dops` is a [project.scripts] console script of this package, and its target is a callable
    (read from pyproject.toml at test time; expected `dops.__main__:main`)."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    scripts = project.get("scripts") or {}
    assert "dops" in scripts, f"pyproject.toml [project.scripts] declares no `dops` (has {sorted(scripts)})"
    target = scripts["dops"]
    module_name, _, attr = target.partition(":")
    assert module_name and attr, f"console script target {target!r} is not module:function"
    module = importlib.import_module(module_name)
    func = module
    for part in attr.split("."):
        func = getattr(func, part)
    assert callable(func), f"{target} is not callable"
    assert module_name.split(".")[0] == "dops", "the script must come from the dops package the image installs"


def _ignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore matching, enough for our patterns: root-relative globs, `**/`, `!` exceptions,
    and a match on any parent directory."""
    result = False
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern) or (
                pattern.startswith("**/") and any(fnmatch.fnmatchcase(c, pattern[3:]) for c in candidate.split("/"))
            ):
                result = not negate
                break
    return result


def test_dockerignore_excludes_dev_state() -> None:
    """.dockerignore keeps .git, .venv, tests and caches out of the build context."""
    patterns = _ignore_patterns()
    for path in (".git", ".venv", "tests", "tests/unit/test_dockerfile.py", ".venv/bin/python", ".pytest_cache"):
        assert ignored(path, patterns), f"{path} is not excluded by .dockerignore"
    assert ignored("operator/dops/__pycache__/x.pyc", patterns)
    assert ignored("operator/dops.egg-info/PKG-INFO", patterns)
    assert not ignored("operator/dops/__init__.py", patterns)
    assert not ignored("pyproject.toml", patterns)


def test_copy_sources_exist_and_are_in_the_context(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """Every COPY/ADD from the build context names a file that exists and .dockerignore does not exclude
    (otherwise `docker build` fails)."""
    _, stages = dockerfile
    patterns = _ignore_patterns()
    for stage in stages:
        for inst in stage.instructions:
            if inst.keyword not in {"COPY", "ADD"} or "--from=" in inst.value:
                continue
            words = [w for w in inst.value.split() if not w.startswith("--")]
            for source in words[:-1]:
                assert (REPO / source).exists(), f"line {inst.line}: COPY source {source} does not exist"
                assert not ignored(source, patterns), f"line {inst.line}: {source} is excluded by .dockerignore"
