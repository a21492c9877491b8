"""The committed artifacts must be what the committed contracts compile to.

The hash checks need nothing; the recompile checks run hack/compile-contracts --check with the
pinned solc (installed by `npm ci` when missing) and are skipped only where node is absent.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from module_runtime.chain.artifacts import CONTRACTS, load_artifact

from .anvil import ROOT, TOOLING_DIR, ensure_tooling

ARTIFACTS_DIR = ROOT / "module_runtime" / "chain" / "artifacts"
COMPILE = ROOT / "hack" / "compile-contracts"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pinned_solc_version() -> str:
    lock = json.loads((TOOLING_DIR / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/solc"]["version"])


def test_one_artifact_per_contract_source() -> None:
    sources = sorted(p.stem for p in (ROOT / "contracts").glob("*.sol"))
    artifacts = sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json"))
    assert sources == artifacts == sorted(CONTRACTS)


@pytest.mark.parametrize("name", CONTRACTS)
def test_artifact_hashes_match_the_sources(name: str) -> None:
    """Cheap staleness check: every source hash recorded in the artifact is current."""
    artifact = load_artifact(name)
    assert artifact.source_path == f"contracts/{name}.sol"
    assert artifact.source_sha256 == sha256(ROOT / artifact.source_path)
    current = {f"contracts/{p.name}": sha256(p) for p in (ROOT / "contracts").glob("*.sol")}
    assert artifact.sources == current, "contracts changed: run hack/compile-contracts"
    assert artifact.solc_version.startswith(pinned_solc_version() + "+commit.")
    assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 100
    assert any(entry.get("type") == "function" for entry in artifact.abi)


@pytest.fixture(scope="module")
def solc_installed() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not available: cannot recompile the contracts")
    ensure_tooling()


def run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(root / "hack" / "compile-contracts"), "--check"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_artifacts_match_a_fresh_compile(solc_installed: None) -> None:
    result = run_check(ROOT)
    assert result.returncode == 0, result.stderr


def test_check_fails_for_a_changed_contract(solc_installed: None, tmp_path: Path) -> None:
    """The recompile check is real: edit a contract in a copy of the tree and it fails."""
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    (tmp_path / "hack" / "contracts").mkdir(parents=True)
    shutil.copy2(COMPILE, tmp_path / "hack" / "compile-contracts")
    (tmp_path / "hack" / "contracts" / "node_modules").symlink_to(TOOLING_DIR / "node_modules")
    shutil.copytree(ARTIFACTS_DIR, tmp_path / "module_runtime" / "chain" / "artifacts")

    assert run_check(tmp_path).returncode == 0  # the copy starts out up to date
    pair = tmp_path / "contracts" / "Pair.sol"
    pair.write_text(pair.read_text().replace("Pair: K", "Pair: K invariant"))
    result = run_check(tmp_path)
    assert result.returncode == 1
    assert "stale Pair.json" in result.stderr
    assert "stale Router.json" in result.stderr  # Router imports Pair: its bytecode changes too
