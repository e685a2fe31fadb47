"""Supply chain: every installed distribution the project and its test extra depend on (transitively) is pinned in
constraints.txt at the installed version, .ci/run installs with it, and ruff's security rules (flake8-bandit, S) are
clean on the whole repository with the project's configuration (per-line ``# noqa: S###`` carry their reason)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
TOOLING = {"pip", "setuptools", "wheel"}


def _closure(name: str, extras: tuple[str, ...] = ()) -> dict[str, str]:
    seen: dict[str, str] = {}

    def walk(n: str, ex: tuple[str, ...]) -> None:
        try:
            d = distribution(n)
        except PackageNotFoundError:
            return  # an optional marker-gated dependency not installed on this platform
        key = canonicalize_name(d.metadata["Name"])
        if key in seen and not ex:
            return
        seen[key] = d.version
        for spec in d.requires or []:
            req = Requirement(spec)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *ex)):
                walk(req.name, tuple(req.extras))

    walk(name, extras)
    seen.pop(canonicalize_name(name), None)
    return {k: v for k, v in seen.items() if k not in TOOLING}


def _constraints() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not pinned exactly: {line}"
            out[canonicalize_name(name)] = version
    return out


def test_every_dependency_is_pinned_at_the_installed_version() -> None:
    deps = _closure("m365sweep", ("test",))
    pins = _constraints()
    assert "msgraph-sdk" in deps and "pytest" in deps
    assert {k: v for k, v in deps.items() if k not in pins} == {}, "unpinned dependencies"
    assert {k: (v, pins[k]) for k, v in deps.items() if pins[k] != v} == {}, "installed != pinned"


def test_ci_installs_with_the_constraints() -> None:
    script = (ROOT / ".ci" / "run").read_text("utf-8")
    assert "-c constraints.txt" in script


@pytest.mark.skipif(shutil.which("ruff") is None and not Path(sys.executable).with_name("ruff").exists(),
                    reason="ruff not installed")
def test_ruff_security_rules_are_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    proc = subprocess.run([ruff, "check", "--output-format", "concise", "--select", "S", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
