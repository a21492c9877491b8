"""Finding module classes: the `tradeplane.modules` entry point group.

Built-in modules register exactly like third-party ones (pyproject.toml's
`[project.entry-points."tradeplane.modules"]`), so a custom module is a pip install
away and there is one lookup path to test. `spec.type` names the entry point, except
for `type: custom`, where `spec.entryPoint` does.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from module_runtime.modules.base import BaseModule
from tradeplane_operator.api.models import ModuleType, TradingModuleSpec

GROUP = "tradeplane.modules"


class UnknownModule(LookupError):
    """No module is registered under that name, or the entry point is not a module."""


def available() -> dict[str, EntryPoint]:
    """Registered modules by entry point name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def module_name(spec: TradingModuleSpec) -> str:
    """The entry point a spec asks for."""
    if spec.type is ModuleType.CUSTOM:
        if not spec.entry_point:
            raise UnknownModule("spec.entryPoint is required when spec.type is custom")
        return spec.entry_point
    return spec.type.value


def load(name: str) -> type[BaseModule[Any]]:
    """The module class registered as `name`."""
    found = available()
    entry = found.get(name)
    if entry is None:
        known = ", ".join(sorted(found)) or "none"
        raise UnknownModule(f"no module {name!r} in entry point group {GROUP} (known: {known})")
    try:
        target = entry.load()
    except Exception as error:
        raise UnknownModule(f"module {name!r} ({entry.value}) failed to import: {error}") from error
    if not (isinstance(target, type) and issubclass(target, BaseModule)):
        raise UnknownModule(f"entry point {name!r} ({entry.value}) is not a BaseModule subclass")
    return target


def module_class_for(spec: TradingModuleSpec) -> type[BaseModule[Any]]:
    return load(module_name(spec))
