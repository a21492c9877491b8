"""The exchange keys reach a live futures pod only by secretKeyRef, and never a log line."""

from __future__ import annotations

import io
import json
import logging

from module_runtime import logs
from module_runtime.config import load
from tradeplane_operator import resources
from tradeplane_operator.api.models import TradingModuleSpec
from tradeplane_operator.resources import ModuleRef
from tradeplane_operator.settings import OperatorSettings

SPEC = TradingModuleSpec.model_validate(
    {
        "type": "futures_trading",
        "mode": "live",
        "capital": {"allocation": "1000"},
        "risk": {"maxPositionSize": "500", "maxDailyLoss": "50", "maxLeverage": 3},
        "exchangeSecretRef": {"name": "binance", "apiKeyKey": "key", "secretKey": "secret"},
        "strategy": {"base": "BTC", "quote": "USDT", "orderSize": "300", "leverage": 3},
    }
)


def test_keys_reach_the_pod_only_by_secret_key_ref() -> None:
    pod = resources.runtime_pod(ModuleRef("f", "ns", "u"), SPEC, OperatorSettings())
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["TRADEPLANE_EXCHANGE_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "binance", "key": "key"}
    }
    assert env["TRADEPLANE_EXCHANGE_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "binance", "key": "secret"}
    }
    assert "value" not in env["TRADEPLANE_EXCHANGE_SECRET"]
    assert "TRADEPLANE_WALLET_KEY" not in env  # live futures need no wallet


def test_keys_are_redacted_from_logs(tmp_path: object) -> None:
    path = tmp_path / "m.json"  # type: ignore[operator]
    path.write_text(
        json.dumps({"metadata": {"name": "f"}, "spec": SPEC.model_dump(by_alias=True, mode="json")})
    )
    cfg = load(
        {
            "TRADEPLANE_CONFIG_FILE": str(path),
            "TRADEPLANE_EXCHANGE_API_KEY": "AKIA-very-secret-key",
            "TRADEPLANE_EXCHANGE_SECRET": "s3cr3t-hmac-value",
        }
    )
    assert "s3cr3t" not in repr(cfg) and "AKIA" not in repr(cfg)
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        logs.configure("INFO", json_output=True, static={}, secrets=cfg.secrets)
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
        logging.getLogger("t").error("signing with s3cr3t-hmac-value for AKIA-very-secret-key")
    finally:
        root.handlers[:] = saved
    text = stream.getvalue()
    assert text and "s3cr3t-hmac-value" not in text and "AKIA-very-secret-key" not in text
