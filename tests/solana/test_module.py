"""The `solana_strategies` module as the runtime builds it (module_runtime.cli.build_host):
the sample on the synthetic market, the price band on a real pool in paper and live mode,
and configs the runtime refuses (exit code 2, the field named)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from solders.keypair import Keypair

from module_runtime.chain.units import to_units
from module_runtime.cli import build_host
from module_runtime.config import ConfigError, RuntimeConfig, parse_module
from module_runtime.orders import OrderStatus, Side
from module_runtime.solana.brokers import SolanaBroker, SolanaPaperBroker
from module_runtime.solana.pool import SolanaMarket
from module_runtime.synthetic_market import RandomWalkMarket

from .conftest import SOL, Market
from .pools import fund
from .test_swaps import balances, buy_order

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "samples" / "solana_strategies.yaml"


def config(doc: dict[str, Any], wallet_key: str | None = None) -> RuntimeConfig:
    return RuntimeConfig(
        module=parse_module(doc),
        name=doc["metadata"]["name"],
        namespace="ns",
        wallet_key=wallet_key,
    )


def pool_module(market: Market, mode: str = "paper", **strategy: Any) -> dict[str, Any]:
    c = market.config
    return {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingModule",
        "metadata": {"name": "sol"},
        "spec": {
            "type": "solana_strategies",
            "mode": mode,
            "capital": {"allocation": "5000"},
            "risk": {"maxPositionSize": "1000", "maxDailyLoss": "250"},
            **({"walletSecretRef": {"name": "w", "key": "k"}} if mode == "live" else {}),
            "strategy": {
                "base": "SOL",
                "quote": "USDC",
                "orderSize": "300",
                "emaPeriod": 2,
                "bandPercent": "1",
                "rpcUrl": market.rpc.url,
                "programId": str(c.program_id),
                "pool": str(c.pool),
                "baseMint": str(c.base_mint),
                "quoteMint": str(c.quote_mint),
                **strategy,
            },
        },
    }


def check(doc: dict[str, Any], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "module.json"
    path.write_text(json.dumps(doc))
    return subprocess.run(
        [sys.executable, "-m", "module_runtime.cli", "check"],
        env={"TRADEPLANE_CONFIG_FILE": str(path), "PATH": "/usr/bin:/bin", **env},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_sample_runs_on_the_synthetic_market() -> None:
    host = build_host(config(yaml.safe_load(SAMPLE.read_text())))
    assert type(host.module).__name__ == "SolanaStrategiesModule"
    assert isinstance(host.module.market, RandomWalkMarket)


async def test_paper_on_a_real_pool_quotes_its_state(market: Market) -> None:
    host = build_host(config(pool_module(market)))
    assert isinstance(host.broker, SolanaPaperBroker)
    assert isinstance(host.module.market, SolanaMarket)
    price = await host.module.market.price("SOL", "USDC")
    assert price == Decimal(150)  # 150 000 USDC / 1 000 SOL
    await host.module.market.close()


async def move_price_down(market: Market, sol: int) -> None:
    """Another trader sells SOL on the pool (a real swap)."""
    await fund(market.admin, market.other.wallet, market.config.base_mint, sol)
    pool = market.solana_pool()
    state = await pool.state()
    quantity = Decimal(sol) / SOL
    order = await buy_order(pool, "1")  # shape only
    from dataclasses import replace

    sell = replace(
        order,
        side=Side.SELL,
        quantity=quantity,
        min_out=Decimal(0),
        price=state.mid_price(),
    )
    fill = await SolanaBroker(pool, market.other).execute(sell)
    assert fill.status is OrderStatus.FILLED, fill


async def test_live_module_buys_the_dip_through_the_order_path(market: Market) -> None:
    host = build_host(config(pool_module(market, "live"), wallet_key=str(market.trader)))
    assert isinstance(host.broker, SolanaBroker)
    before = await balances(market, market.trader)
    await host.module.start()
    for _ in range(3):  # warm the EMA at a steady price
        await host.module.step()
    assert host.order_path.state.positions == {}
    await move_price_down(market, 30 * SOL)  # about -6 %: below the 1 % band
    await host.module.step()
    assert host.module.last_error is None
    (position,) = host.order_path.positions()
    after = await balances(market, market.trader)
    assert after[0] - before[0] == to_units(position.quantity, 9)
    (order,) = host.ledger.intents()  # type: ignore[attr-defined]
    assert order.notional <= 300  # orderSize
    assert before[1] - after[1] == to_units(order.notional, 6)  # what the order spent, exactly
    assert before[2] - after[2] == to_units(host.ledger.outcome(order.order_id).gas_fee, 9)  # type: ignore[attr-defined]
    await host.module.stop()


def test_rpc_url_without_the_pool_is_refused(market: Market, tmp_path: Path) -> None:
    doc = pool_module(market)
    del doc["spec"]["strategy"]["pool"]
    result = check(doc, tmp_path)
    assert result.returncode == 2, result
    assert "rpcUrl needs pool" in result.stderr


def test_live_without_a_pool_is_refused() -> None:
    doc = yaml.safe_load(SAMPLE.read_text())
    doc["spec"]["mode"] = "live"
    doc["spec"]["walletSecretRef"] = {"name": "w", "key": "k"}
    with pytest.raises(ConfigError, match=r"strategy\.rpcUrl: required in live mode"):
        build_host(config(doc, wallet_key=str(Keypair())))


def test_a_bad_public_key_names_the_field(market: Market) -> None:
    with pytest.raises(ConfigError, match=r"strategy\.baseMint: .*not a Solana public key"):
        build_host(config(pool_module(market, baseMint="z" * 44)))


def test_a_bad_wallet_key_is_refused_without_echoing_it(market: Market) -> None:
    secret = "not-a-keypair-" + "x" * 40
    with pytest.raises(ConfigError, match="not a Solana keypair") as refused:
        build_host(config(pool_module(market, "live"), wallet_key=secret))
    assert secret not in str(refused.value)
