"""The pool modules without a node: strategy validation naming fields, dex_trading on the
synthetic market exactly as price_band, the synthetic arbitrage and liquidity samples, and
the pool math against the contracts' formulas. (No anvil: these run in `make test-unit`.)"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_utils.address import to_checksum_address
from prometheus_client import generate_latest

from module_runtime import cli
from module_runtime.chain import Token, get_amount_out
from module_runtime.chain.market import pool_broker
from module_runtime.chain.pool_brokers import PoolPaperBroker
from module_runtime.chain.pool_market import PoolMarket
from module_runtime.chain.pool_state import PoolState
from module_runtime.chain.venues import VenueConfig
from module_runtime.clock import ManualClock
from module_runtime.config import ConfigError, RuntimeConfig
from module_runtime.host import ModuleHost
from module_runtime.ledger import InMemoryLedger
from module_runtime.modules.arbitrage import ArbitrageModule
from module_runtime.modules.base import InvalidStrategyParams
from module_runtime.modules.dex_trading import DexTradingModule
from module_runtime.modules.liquidity import LiquidityModule
from module_runtime.modules.price_band import PriceBandModule
from module_runtime.orders import Order, OrderStatus, Side
from module_runtime.paper_broker import PaperBroker
from module_runtime.synthetic_market import RandomWalkMarket
from tradeplane_operator.api.models import TradingModule

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "config" / "samples"
RUNTIME = Path(sys.executable).with_name("tradeplane-runtime")
D = Decimal
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # a valid EIP-55 address


def sample(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())
    return doc


def config_for(doc: dict[str, Any], key: str | None = None) -> RuntimeConfig:
    return RuntimeConfig(
        module=TradingModule.model_validate(doc), name="m", namespace="ns", wallet_key=key
    )


def manual_host(doc: dict[str, Any]) -> tuple[ModuleHost, ManualClock]:
    """A paper host wired as build_host wires it, on a manual clock."""
    clock = ManualClock(T0)
    cfg = config_for(doc)
    market = cli.build_market(cfg, clock)
    broker = None
    if isinstance(market, PoolMarket):
        broker = pool_broker(market, live=False, wallet_key=None, clock=clock)
    host = ModuleHost(
        cfg.module.spec, name="m", namespace="ns", market=market, clock=clock, broker=broker
    )
    return host, clock


async def run_ticks(host: ModuleHost, clock: ManualClock, count: int) -> None:
    await host.module.start()
    for _ in range(count):
        await host.module.step()
        assert host.module.consecutive_errors == 0, host.module.last_error
        clock.advance(host.module.tick_interval)
    await host.module.stop()


# ---- validation ------------------------------------------------------------------------


def evm_dex(**strategy: Any) -> dict[str, Any]:
    doc = sample("dex_trading")
    doc["spec"]["marketData"] = {"source": "evm", "rpcUrl": "http://127.0.0.1:8545"}
    doc["spec"]["strategy"] |= strategy
    return doc


@pytest.mark.parametrize(
    ("doc", "key", "message"),
    [
        (evm_dex(), None, "strategy.pool: required when marketData.source is evm"),
        (evm_dex(pool=ADDRESS.lower()), "0x" + "11" * 32, "strategy.router: required in live mode"),
        (evm_dex(pool=ADDRESS.replace("F", "f")), None, "strategy.pool: Value error, bad EIP-55"),
        (evm_dex(pool="0x1234"), None, "strategy.pool: Value error, must be a 0x-prefixed"),
        (evm_dex(pool="0x" + "0" * 40), None, "strategy.pool: Value error, the zero address"),
        (evm_dex(pool=ADDRESS, slippagePercent=100), None, "strategy.slippagePercent"),
    ],
)
def test_evm_strategy_errors_name_the_field(
    doc: dict[str, Any], key: str | None, message: str
) -> None:
    if key is not None:
        doc["spec"]["mode"] = "live"
        doc["spec"]["walletSecretRef"] = {"name": "w", "key": "k"}
    with pytest.raises(ConfigError, match=re.escape(message)):
        cli.build_host(config_for(doc, key))


def test_addresses_are_normalized_to_checksums() -> None:
    params = DexTradingModule.parse_params(
        {"base": "WETH", "quote": "USDC", "orderSize": "1", "pool": ADDRESS.lower()}
    )
    assert params.pool == ADDRESS == to_checksum_address(ADDRESS.lower())  # type: ignore[attr-defined]


def test_arbitrage_and_liquidity_errors_name_the_field() -> None:
    doc = sample("arbitrage")
    doc["spec"]["marketData"] = {"source": "evm", "rpcUrl": "http://127.0.0.1:8545"}
    doc["spec"]["strategy"] |= {"poolA": ADDRESS, "poolB": ADDRESS}
    with pytest.raises(ConfigError, match="poolA and poolB must differ"):
        cli.build_host(config_for(doc))
    doc["spec"]["strategy"]["poolB"] = "0x" + "ab" * 20
    doc["spec"] |= {"mode": "live", "walletSecretRef": {"name": "w", "key": "k"}}
    doc["spec"]["strategy"]["routerA"] = ADDRESS
    with pytest.raises(ConfigError, match=re.escape("strategy.routerB: required in live mode")):
        cli.build_host(config_for(doc, "0x" + "11" * 32))
    with pytest.raises(InvalidStrategyParams, match=re.escape("strategy.depositValue")):
        LiquidityModule.parse_params({"base": "WETH", "quote": "USDC", "depositValue": "-1"})


def test_live_mode_cannot_trade_simulated_pools() -> None:
    doc = sample("arbitrage")
    doc["spec"] |= {"mode": "live", "walletSecretRef": {"name": "w", "key": "k"}}
    with pytest.raises(ConfigError, match=re.escape("marketData.source evm")):
        cli.build_host(config_for(doc, "0x" + "11" * 32))


def test_evm_needs_a_module_that_trades_pools() -> None:
    doc = sample("custom")
    doc["spec"]["marketData"] = {"source": "evm", "rpcUrl": "http://127.0.0.1:8545"}
    with pytest.raises(ConfigError, match="a module that trades pools"):
        cli.build_host(config_for(doc))


@pytest.mark.parametrize("name", ["arbitrage", "liquidity_provision", "dex_trading", "custom"])
def test_samples_validate_and_check(name: str, tmp_path: Path) -> None:
    """Against the CRD model and through `tradeplane-runtime check` (the strategy models)."""
    doc = sample(name)
    TradingModule.model_validate(doc)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    env = {"TRADEPLANE_CONFIG_FILE": str(path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [str(RUNTIME), "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "is valid" in done.stdout


# ---- synthetic runs --------------------------------------------------------------------


async def test_dex_trading_on_synthetic_is_exactly_price_band() -> None:
    """dex_trading.yaml as today: random walk, PaperBroker, the same orders and fills as the
    price_band module over the same seed and clock."""
    runs = []
    for module_type in ("dex_trading", "price_band"):
        doc = sample("dex_trading")
        if module_type == "price_band":
            doc["spec"] |= {"type": "custom", "entryPoint": "price_band"}
        host, clock = manual_host(doc)
        assert isinstance(host.module.market, RandomWalkMarket)
        assert isinstance(host.broker, PaperBroker)
        await run_ticks(host, clock, 400)
        ledger = host.ledger
        assert isinstance(ledger, InMemoryLedger)
        fills = [ledger.outcome(o.order_id) for o in ledger.intents()]
        runs.append(
            (
                [(o.side, o.quantity, o.price, o.min_out) for o in ledger.intents()],
                [(f.status, f.quantity, f.price, f.fee) for f in fills if f],
                host.summary(),
            )
        )
        expected = DexTradingModule if module_type == "dex_trading" else PriceBandModule
        assert type(host.module) is expected
    assert runs[0] == runs[1]
    assert runs[0][2]["trades"] > 0


async def test_synthetic_arbitrage_sample_trades_and_is_deterministic() -> None:
    summaries = []
    for _ in range(2):
        host, clock = manual_host(sample("arbitrage"))
        assert isinstance(host.module, ArbitrageModule)
        assert isinstance(host.broker, PoolPaperBroker)
        await run_ticks(host, clock, 300)
        summaries.append(host.summary())
        assert host.module.arbitrages > 0 and host.module.leg_failures == 0
        trades = await host.ledger.closed_trades()
        assert all(t.pnl > 0 for t in trades)  # each paid at least minSpreadBps
        assert all(
            t.pnl >= t.capital * D(10) / 10_000 * D("0.999") for t in trades
        )  # of what it spent (capital = cost incl. fee)
    assert summaries[0] == summaries[1]


async def test_synthetic_liquidity_sample_provides_and_reports() -> None:
    host, clock = manual_host(sample("liquidity_provision"))
    cli_host = cli.build_host(config_for(sample("liquidity_provision")))
    assert "tradeplane_module_lp_fees_earned{" in generate_latest(cli_host.registry).decode()
    module = host.module
    assert isinstance(module, LiquidityModule)
    await run_ticks(host, clock, 300)
    ledger = host.ledger
    assert isinstance(ledger, InMemoryLedger)
    adds = [o for o in ledger.intents() if o.side is Side.BUY]
    assert adds and all(o.base == "WETH-USDC-LP" for o in ledger.intents())
    assert all(abs(o.notional - D(20000)) < D("0.01") for o in adds)  # the deposit value
    assert module.account.fees_earned > 0 and module.account.impermanent_loss >= 0
    assert host.summary()["trades"] >= 1


async def test_liquidity_orders_go_through_the_risk_checks() -> None:
    """A deposit larger than maxPositionSize is refused like any order: no receipt."""
    doc = sample("liquidity_provision")
    doc["spec"]["strategy"]["depositValue"] = "30000"  # > maxPositionSize 25000
    host, clock = manual_host(doc)
    await run_ticks(host, clock, 3)
    ledger = host.ledger
    assert isinstance(ledger, InMemoryLedger) and isinstance(host.module.market, PoolMarket)
    assert ledger.intents() == [] and host.module.market.receipts == {}
    assert ledger.rejections()[0].reason.startswith("max_position_size:")


# ---- pool math -------------------------------------------------------------------------


def state(rb: int = 100 * 10**18, rq: int = 300_000 * 10**6) -> PoolState:
    token = Token(to_checksum_address("0x" + "01" * 20), "WETH", 18)
    usdc = Token(to_checksum_address("0x" + "02" * 20), "USDC", 6)
    lp = Token(to_checksum_address("0x" + "03" * 20), "WETH-USDC-LP", 18)
    return PoolState("pool", token, usdc, lp, 30, rb, rq, math.isqrt(rb * rq))


def test_pool_state_math_is_the_contracts() -> None:
    s = state()
    assert s.mid == D(3000) and s.lp_price * s.lp.from_units(s.total_supply) == D(600_000)
    spend = s.amount_in(Side.BUY, D("0.5"), D("3000.0000019"))
    assert spend == 1_500_000_000  # 1500.0000009 USDC rounds down to units
    assert s.swap_out(Side.BUY, spend) == get_amount_out(spend, s.quote_reserve, s.base_reserve, 30)
    assert s.min_out(Side.SELL, D(1), D(3000), D(1)) == s.quote.from_units(
        s.swap_out(Side.SELL, 10**18) * 99 // 100
    )
    rb, rq, supply = s.base_reserve, s.quote_reserve, s.total_supply
    liquidity = supply // 50  # 2 %
    base_desired, quote_desired = s.add_amounts(liquidity)  # pro rata, rounded up
    assert (base_desired, quote_desired) == (
        -(-liquidity * rb // supply),
        -(-liquidity * rq // supply),
    )
    base, quote, minted = s.mint(base_desired, quote_desired)  # Router + Pair.mint
    assert base <= base_desired and quote <= quote_desired
    assert minted == min(base * supply // rb, quote * supply // rq)
    assert abs(minted - liquidity) <= supply // rq + 1  # within one USDC unit's worth of LP
    assert s.burn(liquidity) == (liquidity * rb // supply, liquidity * rq // supply)  # Pair.burn
    assert abs(s.value(*s.burn(liquidity)) - D(12_000)) < D("0.01")  # 2 % of 600,000


async def test_paper_broker_refuses_what_it_cannot_route() -> None:
    doc = sample("arbitrage")
    host, _ = manual_host(doc)
    assert isinstance(host.broker, PoolPaperBroker)
    ambiguous = await host.broker.execute(Order("paper", Side.BUY, "WETH", "USDC", D(1), D(1)))
    assert ambiguous.status is OrderStatus.REJECTED and "must name one" in (ambiguous.reason or "")
    unknown = await host.broker.execute(Order("a", Side.BUY, "WBTC", "USDC", D(1), D(1)))
    assert unknown.status is OrderStatus.REJECTED and "no venue" in (unknown.reason or "")
    greedy = Order("a", Side.SELL, "WETH", "USDC", D(1), D(3000), min_out=D(10**6))
    assert (await host.broker.execute(greedy)).reason == "Router: output below amountOutMin"


def test_venue_lp_symbol() -> None:
    assert VenueConfig("pool", "WETH", "USDC").lp_symbol == "WETH-USDC-LP"
