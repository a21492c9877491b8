"""How a backtest's report leaves the pod: its container termination message.

The runtime has no API credentials (no service account token is mounted), so it cannot
write the report to the resource itself. Kubernetes already carries a small message
from a finished container to its Pod's status: the file at the container's
`terminationMessagePath` (at most 4096 bytes). The runtime writes the report there as
compact JSON, `{"backtest": {...}}`, and exits 0; the operator, which watches the pod
anyway, reads it from `status.containerStatuses[0].state.terminated.message`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from tradeplane_operator.api.models import BacktestReport

ENV_TERMINATION_MESSAGE_PATH = "TRADEPLANE_TERMINATION_MESSAGE_PATH"
DEFAULT_PATH = "/dev/termination-log"
MAX_BYTES = 4096  # the kubelet keeps no more than this
# Dropped, in this order, if a report would not fit (none of them is a figure).
_OPTIONAL = ("annualization", "source", "halted")


def message(report: BacktestReport) -> str:
    doc = report.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = json.dumps({"backtest": doc}, separators=(",", ":"), sort_keys=True)
    for key in _OPTIONAL:
        if len(text.encode()) <= MAX_BYTES:
            break
        doc.pop(key, None)
        text = json.dumps({"backtest": doc}, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > MAX_BYTES:
        raise ValueError(f"backtest report is {len(text.encode())} bytes, over {MAX_BYTES}")
    return text


def write(report: BacktestReport, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    path = Path(env.get(ENV_TERMINATION_MESSAGE_PATH) or DEFAULT_PATH)
    path.write_text(message(report))
    return path
