"""Bad futures input is refused naming the field: by the runtime at start (exit 2, the
message on stderr, which the operator copies into the status) and, for the secret, by
the schema's CEL rule (tests/unit: the generated CRD carries it)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

SAMPLE: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "config/samples/futures_trading.yaml").read_text()
)
SCRIPT = Path(sys.executable).parent / "tradeplane-runtime"


def check(
    tmp_path: Path, strategy: dict[str, Any], **spec: Any
) -> subprocess.CompletedProcess[str]:
    doc = copy.deepcopy(SAMPLE)
    doc["spec"]["strategy"].update(strategy)
    doc["spec"].update(spec)
    path = tmp_path / "module.json"
    path.write_text(json.dumps(doc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPLANE_")}
    env["TRADEPLANE_CONFIG_FILE"] = str(path)
    return subprocess.run(
        [str(SCRIPT), "check"], env=env, capture_output=True, text=True, timeout=60
    )


def build(tmp_path: Path, strategy: dict[str, Any], **spec: Any) -> str:
    """What `tradeplane-runtime check` does, in this process: the ConfigError's text."""
    from module_runtime import cli, config

    doc = copy.deepcopy(SAMPLE)
    doc["spec"]["strategy"].update(strategy)
    doc["spec"].update(spec)
    path = tmp_path / "module.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(config.ConfigError) as refused:
        cli.build_host(config.load({"TRADEPLANE_CONFIG_FILE": str(path)}))
    return str(refused.value)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ({"leverage": 5}, "strategy.leverage: 5 exceeds risk.maxLeverage 3"),
        ({"leverage": 1, "orderSize": "20000"}, "strategy.orderSize: the position's margin 20000"),
        ({"base": "DOGE"}, "strategy.base: unknown symbol DOGEUSDC"),
        (
            {"fundingIntervalHours": 0},
            "strategy.fundingIntervalHours: Input should be greater than 0",
        ),
        ({"quote": "EUR"}, "strategy.quote"),
    ],
    ids=[
        "leverage above the limit",
        "margin above allocation",
        "unknown symbol",
        "funding interval 0",
        "quote",
    ],
)
def test_refused_at_start_with_the_field_named(
    tmp_path: Path, strategy: dict[str, Any], expected: str
) -> None:
    assert expected in build(tmp_path, strategy)


def test_the_runtime_exits_2_with_the_message(tmp_path: Path) -> None:
    result = check(tmp_path, {"leverage": 5})
    assert result.returncode == 2, result
    assert "strategy.leverage: 5 exceeds risk.maxLeverage 3" in result.stderr, result.stderr


def test_the_sample_is_valid(tmp_path: Path) -> None:
    result = check(tmp_path, {})
    assert result.returncode == 0, result.stderr


def test_live_futures_needs_the_exchange_keys(tmp_path: Path) -> None:
    result = check(tmp_path, {}, mode="live", exchangeSecretRef={"name": "keys"})
    assert result.returncode == 2
    assert (
        "spec.exchangeSecretRef" in result.stderr and "TRADEPLANE_EXCHANGE_SECRET" in result.stderr
    )


def test_the_crd_requires_the_exchange_secret_for_live_futures() -> None:
    from tradeplane_operator.api import crd

    rendered = crd.render()
    text = rendered if isinstance(rendered, str) else json.dumps(rendered)
    assert "exchangeSecretRef is required when mode is live and type is futures_trading" in text
