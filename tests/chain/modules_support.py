"""Helpers for the module tests on anvil: specs, hosts built the way the runtime builds
them (`module_runtime.cli.build_host`), ticks, price moves and ledger/chain reconciliation."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from web3 import AsyncWeb3

from module_runtime import cli
from module_runtime.chain import PoolClient, to_units
from module_runtime.config import RuntimeConfig
from module_runtime.host import ModuleHost
from module_runtime.ledger import InMemoryLedger
from module_runtime.orders import OrderStatus, Side
from module_runtime.positions import ACCOUNTING_CONTEXT
from tradeplane_operator.api.models import TradingModule

from .conftest import MAX_UINT256, Dex, Venue, balance, erc20, market_swap, transact

RISK: dict[str, Any] = {
    "maxPositionSize": "2000",
    "maxDailyLoss": "500",
    "maxDrawdownPercent": 20,
    "stopLossPercent": 5,
    "maxOpenPositions": 1,
}


def module_doc(
    module_type: str,
    strategy: dict[str, Any],
    *,
    rpc_url: str,
    mode: str = "live",
    risk: dict[str, Any] | None = None,
    allocation: str = "10000",
    name: str = "m",
    log_level: str = "INFO",
) -> dict[str, Any]:
    """A whole TradingModule document (what the operator mounts), on the evm source."""
    spec: dict[str, Any] = {
        "type": module_type,
        "mode": mode,
        "capital": {"allocation": allocation, "currency": "USDC"},
        "risk": {**RISK, **(risk or {})},
        "strategy": strategy,
        "marketData": {"source": "evm", "rpcUrl": rpc_url},
        "logLevel": log_level,
    }
    if mode == "live":
        spec["walletSecretRef"] = {"name": "wallet", "key": "private-key"}
    return {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingModule",
        "metadata": {"name": name, "namespace": "test"},
        "spec": spec,
    }


def runtime_config(doc: dict[str, Any], key: str | None = None) -> RuntimeConfig:
    module = TradingModule.model_validate(doc)
    return RuntimeConfig(
        module=module, name=doc["metadata"]["name"], namespace="test", wallet_key=key
    )


def build_host(doc: dict[str, Any], key: str | None = None) -> ModuleHost:
    """The host exactly as `tradeplane-runtime run` builds it (market, broker, metrics)."""
    return cli.build_host(runtime_config(doc, key))


async def ticks(host: ModuleHost, count: int = 1) -> None:
    """Run `count` module iterations (protect + tick); fail on a tick error."""
    if not host.module.started:
        await host.module.start()
    for _ in range(count):
        await host.module.step()
        assert host.module.consecutive_errors == 0, host.module.last_error


def ledger_of(host: ModuleHost) -> InMemoryLedger:
    assert isinstance(host.ledger, InMemoryLedger)
    return host.ledger


async def approve_routers(w3: AsyncWeb3[Any], dex: Dex, owner: str) -> None:
    """Approve both routers for both tokens up front, so no approval interleaves a test."""
    for venue in (dex.venue_a, dex.venue_b):
        for token in (dex.weth, dex.usdc):
            await transact(w3, erc20(w3, token).functions.approve(venue.router, MAX_UINT256), owner)


async def mid(w3: AsyncWeb3[Any], venue: Venue) -> Decimal:
    pool = await PoolClient.load(w3, venue.pair, base="WETH")
    return await pool.mid_price()


async def move_to(w3: AsyncWeb3[Any], dex: Dex, venue: Venue, target: Decimal) -> None:
    """`other` swaps on `venue` until its mid price is about `target` USDC per WETH."""
    pool = await PoolClient.load(w3, venue.pair, base="WETH")
    rb, rq = pool.oriented(await pool.reserves(), pool.base)
    with localcontext(ACCOUNTING_CONTEXT):
        target_units = target * Decimal(10) ** (pool.quote.decimals - pool.base.decimals)
        k = Decimal(rb) * Decimal(rq)
        keep = Decimal("0.997")
        new_base = (k / target_units).sqrt()
        if new_base > rb:
            token, amount = dex.weth, int((new_base - rb) / keep)
        else:
            token, amount = dex.usdc, int(((k * target_units).sqrt() - rq) / keep)
    if amount > 0:
        await market_swap(w3, dex, venue, token, amount)


async def token_balances(w3: AsyncWeb3[Any], dex: Dex, holder: str) -> tuple[int, int]:
    return await balance(w3, dex.weth, holder), await balance(w3, dex.usdc, holder)


def ledger_token_flows(ledger: InMemoryLedger) -> tuple[Decimal, Decimal]:
    """(WETH, USDC) the ledger's filled swaps moved into (+) and out of (-) the wallet."""
    weth = usdc = Decimal(0)
    with localcontext(ACCOUNTING_CONTEXT):
        for order in ledger.intents():
            fill = ledger.outcome(order.order_id)
            if fill is None or fill.status is not OrderStatus.FILLED:
                continue
            if order.side is Side.BUY:
                weth += fill.quantity
                usdc -= fill.quantity * fill.price + fill.fee
            else:
                weth -= fill.quantity
                usdc += fill.quantity * fill.price - fill.fee
    return weth, usdc


def signed_units(amount: Decimal, decimals: int) -> int:
    """A signed token amount to units, to the nearest unit (a sum of fills carries ~1e-30
    of division noise from the fee-exclusive prices; it never amounts to half a unit)."""
    with localcontext(ACCOUNTING_CONTEXT):
        rounded = amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
        assert abs(rounded - amount) < Decimal("1E-20"), f"{amount} is not a whole amount"
    units = to_units(abs(rounded), decimals)
    return units if rounded >= 0 else -units
