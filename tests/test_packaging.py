"""The package list in pyproject is written by hand (the operator/ folder is mapped to
`tradeplane_operator`); every package folder must be listed or it won't ship."""

from __future__ import annotations

import operator as stdlib_operator
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_stdlib_operator_is_not_shadowed() -> None:
    assert hasattr(stdlib_operator, "itemgetter")
    import tradeplane_operator

    assert Path(tradeplane_operator.__file__).parent.name == "operator"
