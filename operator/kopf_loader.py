"""Import kopf without the Kubernetes client libraries it probes for.

On import, kopf tries `kubernetes`, `kubernetes_asyncio` and `pykube`, to recognise
their model objects and to pick a fallback login. The operator uses none of them: it
passes plain dicts, logs in with its own handler (connections.py) and makes its calls
through kopf's client (kube.py). `kubernetes` alone is ~15 MiB of RSS, its ~700 model
classes (bench/fleet.py, P3: the operator's budget at 1,000 modules is 200 MB).

The libraries are hidden only while kopf loads; a kubeconfig that needs one to log in
(an exec plugin, say) still imports it later, in `connections.connection_info`.
"""

from __future__ import annotations

import sys
from types import ModuleType

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
    return kopf
