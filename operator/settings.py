"""Operator-wide settings, from the command line and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import __version__

DEFAULT_IMAGE = f"tradeplane/tradeplane:{__version__}"


@dataclass(frozen=True)
class OperatorSettings:
    runtime_image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    # A Secret (in each module's namespace) holding the runtime's database URL; the
    # operator only names it in the pod spec and never reads it.
    database_secret_name: str | None = None
    database_secret_key: str = "url"
    runtime_port: int = 8080
    termination_grace_seconds: int = 30
    probe_concurrency: int = 32
    status_min_interval_seconds: float = 60.0
    malloc_trim_seconds: float = 60.0  # 0: never (operator/memory.py)

    @classmethod
    def from_env(cls) -> OperatorSettings:
        env = os.environ
        return cls(
            runtime_image=env.get("TRADEPLANE_RUNTIME_IMAGE", DEFAULT_IMAGE),
            image_pull_policy=env.get("TRADEPLANE_IMAGE_PULL_POLICY", "IfNotPresent"),
            database_secret_name=env.get("TRADEPLANE_DATABASE_SECRET") or None,
            database_secret_key=env.get("TRADEPLANE_DATABASE_SECRET_KEY", "url"),
            termination_grace_seconds=int(env.get("TRADEPLANE_TERMINATION_GRACE_SECONDS", "30")),
            probe_concurrency=int(env.get("TRADEPLANE_PROBE_CONCURRENCY", "32")),
            status_min_interval_seconds=float(env.get("TRADEPLANE_STATUS_MIN_INTERVAL", "60")),
            malloc_trim_seconds=float(env.get("TRADEPLANE_MALLOC_TRIM_SECONDS", "60")),
        )
