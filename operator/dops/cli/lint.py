"""`dops lint FILE…` and `dops submit --dry-run`: check a DelegatedOperation before anything runs.

What `kubectl apply` would only tell at the API server (or the operator only once the worker starts) is
checked here first, one line per problem:
- the schema: the CRD's own openAPI schema (the CRDs this dops ships, `dops/data/crds` or a checkout's
  `crds/`), evaluated by the embedded control plane's structural-schema validator — the same code that
  judges objects in `dops dev` — including unknown fields (kubectl's default is strict field validation);
- the target: when a cluster is reachable, the named DelegationTarget must exist in the namespace;
- the operator URI: known to the target when that can be known (the dev image runs this installation, so
  its operators are this installation's); otherwise only a warning that it is not installed here. `py:`
  URIs need a target with `allowImportPaths: true` (a warning: the operator may allow them globally).
Errors exit 2 (invalid input, as the API server's own rejections), warnings alone exit 0.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..api import constants as c
from ..domain import names, resources
from ..domain.targets import DEFAULT_TARGET_NAME
from ..execution.registry import _IMPORT_PATH, IMPORT_PREFIX, default_registry
from ..k8s import ApiError, ApiUnavailable, ConfigurationError, NotFound, ResourceClient
from .errors import EXIT_OK, EXIT_USAGE, CliError, describe
from .options import OutputFormat
from .session import Session

JSON = dict[str, Any]
DEV_IMAGE_PREFIX = "ghcr.io/dops-dev/dops:"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Findings:
    """What one object's checks found: errors (exit 2) and warnings (printed, exit 0)."""

    where: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- reading


def manifest_files(paths: list[str]) -> list[str]:
    """FILE, `-` (stdin) or a directory (its *.yaml, *.yml, *.json, as `kubectl apply -f DIR`)."""
    out: list[str] = []
    for raw in paths:
        if raw == "-":
            out.append(raw)
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
            if not found:
                raise CliError(f"no manifests (*.yaml, *.yml, *.json) in {raw}", EXIT_USAGE)
            out += found
        elif path.is_file():
            out.append(raw)
        else:
            raise CliError(f"cannot read {raw}: no such file or directory", EXIT_USAGE)
    return out


def load_objects(path: str) -> Iterator[tuple[str, Any]]:
    """(where, object) for every YAML document of `path` (a `kind: List` is expanded)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    name = "stdin" if path == "-" else path
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise CliError(f"{name}:{at} not valid YAML: {getattr(exc, 'problem', None) or exc}", EXIT_USAGE) from None
    for i, doc in enumerate(docs):
        where = name if len(docs) == 1 else f"{name} (document {i + 1})"
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            for j, item in enumerate(doc["items"]):
                yield f"{where} item {j + 1}", item
        else:
            yield where, doc


# ------------------------------------------------------------------------------------------- schema


class Schemas:
    """The openAPI schemas of the dops kinds from the CRDs this dops ships, compiled once."""

    def __init__(self) -> None:
        from ..emulator.schema import StructuralSchema
        from .dev import shipped

        self._compiled: dict[tuple[str, str], Any] = {}
        with contextlib.ExitStack() as stack:
            crds = shipped("crds", stack)
            if crds is None:
                raise CliError("this dops installation ships no CRD manifests to validate against: reinstall dops")
            for path in sorted(crds.glob("*.yaml")):
                for crd in yaml.safe_load_all(path.read_text()):
                    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                        continue
                    spec = crd.get("spec") or {}
                    kind = (spec.get("names") or {}).get("kind")
                    for version in spec.get("versions") or []:
                        schema = (version.get("schema") or {}).get("openAPIV3Schema")
                        if schema and version.get("served", True):
                            api_version = f"{spec.get('group')}/{version.get('name')}"
                            self._compiled[(api_version, str(kind))] = StructuralSchema(schema)

    def kinds(self) -> list[str]:
        return sorted({kind for _, kind in self._compiled})

    def check(self, obj: JSON) -> list[str]:
        """Schema errors of a dops object, as kube-apiserver words them (`spec.operator: Required value`)."""
        key = (str(obj.get("apiVersion")), str(obj.get("kind")))
        schema = self._compiled.get(key)
        if schema is None:
            versions = sorted(v for v, k in self._compiled if k == key[1])
            return [f"apiVersion {key[0]} is not served for kind {key[1]} (use {', '.join(versions)})"]
        body = copy.deepcopy(obj)
        errors = [f"unknown field {path!r}" for path in schema.unknown_fields(body) if not path.startswith("metadata")]
        schema.apply_defaults(body)
        # (kube-apiserver adds "some validation rules were not checked" after other errors: noise here)
        errors += [cause["message"] for cause in schema.validate(body) if cause["field"] != "<nil>"]
        meta = body.get("metadata")
        if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
            errors.append("metadata.name: Required value: name or generateName is required")
        elif meta.get("name"):
            try:
                names.validate_name(str(meta["name"]), "metadata.name")
            except ValueError as exc:
                errors.append(str(exc))
        return errors


# ------------------------------------------------------------------------------------------- the cluster


class Cluster:
    """The targets of a reachable cluster, looked up lazily; `reason` says why they cannot be (None: reachable)."""

    def __init__(self, sess: Session) -> None:
        self.sess = sess
        self.reason: str | None = None
        # Targets defined in the files being checked (`dops lint examples/` holds the target its operations use).
        self.local: dict[tuple[str, str], JSON] = {}

    def target(self, namespace: str, name: str) -> JSON | None:
        """The DelegationTarget, None when it does not exist; raises LookupError when nothing can be known."""
        if (namespace, name) in self.local:
            return self.local[(namespace, name)]
        if self.reason is not None:
            raise LookupError(self.reason)
        try:
            client = ResourceClient(self.sess.client(), c.GROUP, c.VERSION, c.TARGET_PLURAL)
            found: JSON = client.get(namespace, name)
            return found
        except NotFound as exc:
            details = exc.status.get("details") or {}
            if details.get("name"):
                return None
            self.reason = "the cluster has no dops CRDs"
        except (ApiUnavailable, ConfigurationError) as exc:
            self.reason = describe(exc, self.sess.server)[0]
        except ApiError as exc:
            self.reason = describe(exc, self.sess.server)[0]
        raise LookupError(self.reason)


def _mapping(obj: JSON, key: str) -> JSON:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def check_operation(obj: JSON, where: str, schemas: Schemas, cluster: Cluster | None, namespace: str) -> Findings:
    """Every check of one DelegatedOperation (see the module docstring)."""
    meta = _mapping(obj, "metadata")
    found = Findings(f"{where}: {c.KIND} {meta.get('name') or meta.get('generateName') or '(unnamed)'}")
    found.errors += schemas.check(obj)
    spec = _mapping(obj, "spec")
    operator = spec.get("operator")
    target_name = spec.get("delegationTarget") or ""
    target: JSON | None = None
    ns = str(meta.get("namespace") or namespace)
    if cluster is not None and not target_name:
        # No target: the namespace's "default" DelegationTarget when it exists, else the operator's built-in one.
        with contextlib.suppress(LookupError):
            target = cluster.target(ns, DEFAULT_TARGET_NAME)
    elif cluster is not None:
        try:
            target = cluster.target(ns, str(target_name))
            if target is None:
                found.errors.append(
                    f'DelegationTarget "{target_name}" not found in namespace "{ns}" '
                    "(the operation would stay queued until one is created)"
                )
        except LookupError as exc:
            found.warnings.append(f"target {target_name!r} not checked: {exc}")
    if isinstance(operator, str) and operator:
        found.errors += _operator_errors(operator, target, found)
    return found


def _operator_errors(operator: str, target: JSON | None, found: Findings) -> list[str]:
    tspec = (target or {}).get("spec") or {}
    image = str(tspec.get("image") or "")
    runs_this_installation = image.startswith(DEV_IMAGE_PREFIX)
    if operator.startswith(IMPORT_PREFIX):
        if not _IMPORT_PATH.match(operator[len(IMPORT_PREFIX) :]):
            return [f"spec.operator: {operator!r} is not an import path (py:package.module:function)"]
        if target is not None and not tspec.get("allowImportPaths"):
            found.warnings.append(
                f"target {target['metadata']['name']!r} does not set allowImportPaths: true, so {operator} runs only "
                "if the operator allows import paths for every target (DOPS_ALLOW_IMPORT_PATHS=true)"
            )
        return []
    registry = default_registry()
    if operator in registry:
        return []
    known = ", ".join(registry.known())
    if runs_this_installation:
        return [f"spec.operator: operator {operator} is not installed (the target runs this dops; known: {known})"]
    found.warnings.append(
        f"operator {operator} is not installed here (known here: {known}); fine if the worker image has it"
    )
    return []


def check_target(obj: JSON, where: str, schemas: Schemas) -> Findings:
    meta = _mapping(obj, "metadata")
    found = Findings(f"{where}: {c.TARGET_KIND} {meta.get('name') or '(unnamed)'}")
    found.errors += schemas.check(obj)
    return found


def report(sess: Session, findings: list[Findings], quiet_ok: bool = False) -> int:
    """Print one line per problem (errors on stderr, `ok` lines on stdout); the exit code."""
    worst = EXIT_OK
    for f in findings:
        for error in f.errors:
            sess.err.print(f"error: {f.where}: {' '.join(error.split())}", markup=False, soft_wrap=True)
            worst = EXIT_USAGE
        for warning in f.warnings:
            sess.err.print(f"warning: {f.where}: {' '.join(warning.split())}", markup=False, soft_wrap=True)
        if not f.errors and not quiet_ok:
            sess.out.print(f"{f.where}: ok", markup=False, soft_wrap=True)
    return worst


def lint_files(sess: Session, paths: list[str], namespace: str | None, offline: bool) -> int:
    objects = [item for path in manifest_files(paths) for item in load_objects(path)]  # bad files: exit 2 first
    schemas = Schemas()
    cluster = None if offline else Cluster(sess)
    ns = namespace or sess.namespace or _kubeconfig_namespace(sess, cluster)
    findings: list[Findings] = []
    if cluster is not None:
        for _, obj in objects:
            if isinstance(obj, Mapping) and obj.get("kind") == c.TARGET_KIND:
                meta = _mapping(dict(obj), "metadata")
                cluster.local[(str(meta.get("namespace") or ns), str(meta.get("name") or ""))] = dict(obj)
    for where, obj in objects:
        if not isinstance(obj, Mapping):
            findings.append(Findings(where, errors=[f"not an object (a {type(obj).__name__})"]))
            continue
        kind = obj.get("kind")
        if kind == c.KIND:
            findings.append(check_operation(dict(obj), where, schemas, cluster, ns))
        elif kind == c.TARGET_KIND:
            findings.append(check_target(dict(obj), where, schemas))
        else:
            found = Findings(f"{where}: {kind or '(no kind)'}")
            found.warnings.append(f"not a dops kind ({', '.join(schemas.kinds())}): not checked")
            findings.append(found)
    return report(sess, findings)


def _kubeconfig_namespace(sess: Session, cluster: Cluster | None) -> str:
    if cluster is None:
        return "default"
    try:
        return sess.client().namespace
    except (ConfigurationError, ApiError, OSError) as exc:
        cluster.reason = describe(exc, None)[0]
        return "default"


def dry_run_submit(
    sess: Session,
    namespace: str,
    *,
    operator: str,
    params: dict[str, Any],
    request: dict[str, Any],
    label: str | None,
    target: str | None,
    rerunnable: bool,
    output: OutputFormat,
) -> int:
    """`submit --dry-run`: the operation `submit` would create, checked as `lint` checks a file; nothing queued."""
    spec = resources.build_spec(
        operator=operator,
        label=label,
        delegation_target=target,
        request_params=request,
        dataset_id=None,
        rerunnable=rerunnable,
    )
    body = resources.operation_resource("dop-dry-run", namespace, spec)
    body["metadata"] = {"generateName": "dop-", "namespace": namespace, "labels": body["metadata"]["labels"]}
    findings = check_operation(body, "submit --dry-run", Schemas(), Cluster(sess), namespace)
    code = report(sess, [findings], quiet_ok=True)
    if code == EXIT_OK:
        from . import render

        if output.kind in ("json", "yaml"):
            sess.out.print(render.dump(body, output.kind), markup=False, soft_wrap=True)
        else:
            sess.out.print(
                f"operation of {operator} would be queued in namespace {namespace!r} (dry run: nothing queued)",
                markup=False,
                soft_wrap=True,
            )
    return code
