"""Compiled contracts (ABI + bytecode) shipped with the package.

The JSON files in `artifacts/` are written by `hack/compile-contracts` from `contracts/*.sol`
and committed, so the runtime never needs a compiler; `tests/chain/test_artifacts.py`
fails when they no longer match the sources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

CONTRACTS = ("TestToken", "Pair", "Router")


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]] = field(repr=False)
    bytecode: str = field(repr=False)  # 0x-prefixed creation code
    deployed_bytecode: str = field(repr=False)
    source_path: str
    source_sha256: str
    sources: dict[str, str] = field(repr=False)  # every compiled file -> its sha256
    solc_version: str


@cache
def load_artifact(name: str) -> Artifact:
    """Load `artifacts/<name>.json` (cached: the files never change at run time)."""
    if name not in CONTRACTS:
        raise KeyError(f"no artifact named {name!r}; known: {', '.join(CONTRACTS)}")
    text = (
        resources.files("module_runtime.chain")
        .joinpath("artifacts", f"{name}.json")
        .read_text("utf-8")
    )
    raw = json.loads(text)
    return Artifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=raw["bytecode"],
        deployed_bytecode=raw["deployedBytecode"],
        source_path=raw["sourcePath"],
        source_sha256=raw["sourceSha256"],
        sources=dict(raw["sources"]),
        solc_version=raw["solcVersion"],
    )
