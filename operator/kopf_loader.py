"""Import kopf without the Kubernetes client libraries it probes for, and with its
start-up gate made linear.

On import, kopf tries `kubernetes`, `kubernetes_asyncio` and `pykube`, to recognise
their model objects and to pick a fallback login. The operator uses none of them: it
passes plain dicts, logs in with its own handler (connections.py) and makes its calls
through kopf's client (kube.py). `kubernetes` alone is ~15 MiB of RSS, its ~700 model
classes (bench/fleet.py, P3: the operator's budget at 1,000 modules is 200 MB).

The libraries are hidden only while kopf loads; a kubeconfig that needs one to log in
(an exec plugin, say) still imports it later, in `connections.connection_info`.

The start-up gate: kopf holds every object's handlers until all indexes are filled. Each
listed object adds a toggle to one `ToggleSet` and drops it once indexed, and each add
and drop wakes every object already waiting, although the set's state (all toggles gone)
does not change until the last drop: quadratic in the objects. At 1,000 modules and
their pods that was ~40% of the operator's CPU in a restart, and no module was touched
for the first ~14 s (bench/fleet.py, P4). `_ToggleSetGate` wakes the waiters only when
the set's state changes, which is the only thing its own waiters wait for; a toggle's
own waiters are woken by `Toggle.turn_to`, which is unchanged.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

CLIENT_LIBRARIES = ("kubernetes", "kubernetes_asyncio", "pykube")


def import_kopf() -> ModuleType:
    hidden = [name for name in CLIENT_LIBRARIES if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # "import name" raises ImportError
    try:
        import kopf

        kopf.get_default_registry()  # kopf probes for the libraries here too
    finally:
        for name in hidden:
            if sys.modules.get(name) is None:
                del sys.modules[name]
    linear_start_gate()
    return kopf


def linear_start_gate() -> None:
    """Make kopf's `ToggleSet` notify only on a change of its state (see above)."""
    from kopf._cogs.aiokits import aiotoggles

    toggle_set: Any = aiotoggles.ToggleSet
    if getattr(toggle_set, "_linear", False):
        return

    async def make_toggle(
        self: Any, __val: bool = False, *, name: str | None = None
    ) -> aiotoggles.Toggle:
        toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
        async with self._condition:
            before = self.is_on()
            self._toggles.add(toggle)
            if self.is_on() != before:
                self._condition.notify_all()
        return toggle

    async def drop_toggles(self: Any, toggles: Any) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.difference_update(toggles)
            if self.is_on() != before:
                self._condition.notify_all()

    async def drop_toggle(self: Any, toggle: aiotoggles.Toggle) -> None:
        await drop_toggles(self, (toggle,))

    toggle_set.make_toggle = make_toggle
    toggle_set.drop_toggle = drop_toggle
    toggle_set.drop_toggles = drop_toggles
    toggle_set._linear = True
