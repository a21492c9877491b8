"""Live perpetuals on Binance USDⓈ-M through ccxt (`ccxt.async_support`: the runtime's
event loop never blocks on the exchange).

- `ExchangeFuturesBroker.execute`: `create_order` (market, `reduceOnly` for exits,
  `positionSide` BOTH, our order id as `newClientOrderId`, the exchange's idempotency
  key), then the fill from the exchange's own strings (`executedQty`, `avgPrice`) and
  the commission of its trades, as Decimals: ccxt's unified floats are never used for
  money. The exchange refusing the order (insufficient margin -2019, a rate limit 429 /
  -1003, reduce-only rejected) is REVERTED with its message; a network failure raises
  (outcome unknown: the intent stays open and is reconciled by client order id).
- `start`: the symbol must be a perpetual the exchange lists (else the config is
  refused, naming strategy.base), isolated margin and the leverage are set, and the
  exchange's own notional brackets replace the built-in tier table for the risk checks.
- `position_events`: liquidations - a position of ours that `fetch_positions` shows
  closed, with the exchange's forced order for it (`fetch_my_liquidations`) - and
  funding payments from the exchange's income history
  (`fetch_funding_history`, one event per transaction id), asked at most once a minute
  (the endpoint is heavy in the exchange's rate-limit weights).
- `close` (SIGTERM): cancel every open order of the symbol, then close the session.
- `ExchangeIntentResolver`: an open intent is looked up by its client order id:
  FILLED -> that fill, unknown to the exchange (-2013) -> DROPPED, resting -> cancelled.
- `ExchangeMarket`: mark prices (`fetch_funding_rate`: premiumIndex's markPrice).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from module_runtime.clock import Clock
from module_runtime.config import ConfigError
from module_runtime.futures.events import EventKind, PositionEvent
from module_runtime.futures.tiers import Tier, TierTable, default_tables
from module_runtime.orders import Fill, Order, OrderStatus
from module_runtime.positions import Position, PositionKey

log = logging.getLogger(__name__)

ZERO = Decimal(0)


def symbol_of(base: str, quote: str) -> str:
    """ccxt's unified symbol of a linear perpetual: BTC/USDT:USDT."""
    return f"{base}/{quote}:{quote}"


def make_exchange(api_key: str, secret: str, url: str | None = None) -> Any:
    """A ccxt binanceusdm client; `url` replaces the fapi REST root (a testnet, the
    tests' stand-in)."""
    import ccxt.async_support as ccxt

    exchange = ccxt.binanceusdm(
        {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": True,
            "timeout": 10_000,
            "options": {"fetchCurrencies": False, "defaultType": "future"},
        }
    )
    if url:
        root = url.rstrip("/")
        for name in list(exchange.urls["api"]):
            if name.startswith("fapi"):
                version = name.removeprefix("fapiPublic").removeprefix("fapiPrivate")
                path = {"": "v1", "V2": "v2", "V3": "v3", "fapiData": "futures/data"}
                exchange.urls["api"][name] = f"{root}/fapi/{path.get(version, 'v1')}"
        by_url = exchange.get_exceptions_by_url

        def exceptions(address: str, kind: str) -> Any:
            """ccxt picks Binance's error-code table by host name: ours is linear."""
            if address.startswith(root + "/fapi/"):
                linear = exchange.safe_dict(exchange.exceptions, "linear", {})
                return exchange.safe_dict(linear, kind, {})
            return by_url(address, kind)

        exchange.get_exceptions_by_url = exceptions
    return exchange


async def close_exchange(exchange: Any) -> None:
    """Close a ccxt client's HTTP session too (this ccxt's plain `close()` closes only its
    websockets and leaves the REST session open)."""
    await exchange.close(clean_instance_data=True)


def _decimal(value: Any) -> Decimal:
    return ZERO if value in (None, "") else Decimal(str(value))


def _refusal(error: Exception) -> str | None:
    """The exchange's refusal of an order (nothing executed), or None: outcome unknown."""
    import ccxt

    refused = (
        ccxt.InsufficientFunds,
        ccxt.RateLimitExceeded,
        ccxt.DDoSProtection,
        ccxt.InvalidOrder,
        ccxt.BadRequest,
        ccxt.PermissionDenied,
        ccxt.AuthenticationError,
    )
    if isinstance(error, refused):
        return f"{type(error).__name__}: {error}"
    return None


class ExchangeFuturesBroker:
    def __init__(
        self,
        exchange: Any,
        *,
        clock: Clock,
        tiers: dict[PositionKey, TierTable] | None = None,
        name: str = "binanceusdm",
    ) -> None:
        self.exchange = exchange
        self.name = name
        self._clock = clock
        self.tiers = tiers if tiers is not None else dict(default_tables())
        self.symbols: set[str] = set()
        self._funding_since: int | None = None
        # the income history weighs 30 of Binance's 2400 per minute: asked once a minute
        self.funding_poll = timedelta(seconds=60)
        self._next_poll: datetime | None = None

    async def start(self, base: str, quote: str, leverage: Decimal) -> None:
        """Check the symbol, set isolated margin and the leverage (at module start)."""
        import ccxt

        markets = await self.exchange.load_markets()
        symbol = symbol_of(base, quote)
        market = markets.get(symbol)
        if market is None or not market.get("swap"):
            raise ConfigError(
                f"invalid strategy parameters: strategy.base: {base}{quote} is not a perpetual "
                f"on {self.name}"
            )
        self.symbols.add(symbol)
        try:
            await self.exchange.set_margin_mode("isolated", symbol)
        except ccxt.MarginModeAlreadySet:
            pass
        except ccxt.ExchangeError as error:
            if "No need to change margin type" not in str(error):
                raise
        await self.exchange.set_leverage(int(leverage), symbol)
        self.tiers[(base, quote)] = await self._tiers(base, quote)
        self._funding_since = int(self._clock.now().timestamp() * 1000)

    async def _tiers(self, base: str, quote: str) -> TierTable:
        """The exchange's own brackets for the symbol (numbers in its JSON: read as their
        decimal text, so 0.004 stays 0.004)."""
        rows = await self.exchange.fapiPrivateGetLeverageBracket({"symbol": f"{base}{quote}"})
        brackets = rows[0]["brackets"] if isinstance(rows, list) else rows["brackets"]
        return TierTable(
            f"{base}{quote}",
            [
                Tier(
                    _decimal(b["notionalFloor"]),
                    _decimal(b["notionalCap"]),
                    _decimal(b["initialLeverage"]),
                    _decimal(b["maintMarginRatio"]),
                    _decimal(b["cum"]),
                )
                for b in sorted(brackets, key=lambda b: int(b["bracket"]))
            ],
        )

    async def execute(self, order: Order) -> Fill:
        symbol = symbol_of(order.base, order.quote)
        params = {
            "newClientOrderId": order.order_id,
            "reduceOnly": order.reduces_position,
            "positionSide": "BOTH",
        }
        try:
            placed = await self.exchange.create_order(
                symbol, "market", order.side.value, str(order.quantity), None, params
            )
        except Exception as error:
            reason = _refusal(error)
            if reason is None:
                raise  # outcome unknown: reconciled by client order id
            log.warning("exchange refused the order", extra={"order_id": order.order_id})
            return Fill(order.order_id, OrderStatus.REVERTED, reason=reason, at=self._clock.now())
        return await self._fill(order, placed.get("info") or {})

    async def _fill(self, order: Order, info: dict[str, Any]) -> Fill:
        status = str(info.get("status", "")).upper()
        executed = _decimal(info.get("executedQty"))
        if status == "FILLED" or (executed > 0 and status in ("CANCELED", "EXPIRED")):
            fee = await self._commission(order, str(info["orderId"]))
            return Fill(
                order.order_id,
                OrderStatus.FILLED,
                executed,
                _decimal(info.get("avgPrice")),
                fee,
                at=self._clock.now(),
            )
        if status in ("CANCELED", "EXPIRED", "REJECTED"):
            return Fill(
                order.order_id,
                OrderStatus.CANCELLED,
                reason=f"exchange: {status}",
                at=self._clock.now(),
            )
        return Fill(
            order.order_id, OrderStatus.SENT, reason=f"exchange: {status}", at=self._clock.now()
        )

    async def _commission(self, order: Order, exchange_order_id: str) -> Decimal:
        trades = await self.exchange.fapiPrivateGetUserTrades(
            {"symbol": f"{order.base}{order.quote}", "orderId": exchange_order_id}
        )
        return sum((_decimal(t.get("commission")) for t in trades), ZERO)

    async def lookup(self, order: Order) -> Fill | None:
        """The exchange's answer for `order`, by its client order id (reconciliation)."""
        import ccxt

        symbol = symbol_of(order.base, order.quote)
        try:
            found = await self.exchange.fetch_order(
                None, symbol, {"origClientOrderId": order.order_id}
            )
        except ccxt.OrderNotFound:
            return Fill(
                order.order_id,
                OrderStatus.DROPPED,
                reason="the exchange has no order with this client order id: never placed",
                at=self._clock.now(),
            )
        info = found.get("info") or {}
        if str(info.get("status", "")).upper() in ("NEW", "PARTIALLY_FILLED"):
            cancelled = await self.exchange.cancel_order(
                None, symbol, {"origClientOrderId": order.order_id}
            )
            info = cancelled.get("info") or info
        fill = await self._fill(order, info)
        return fill if fill.status is not OrderStatus.SENT else None

    async def position_events(self, positions: list[Position]) -> list[PositionEvent]:
        """Liquidations (a position of ours the exchange closed: its forced order) and the
        funding it booked for our symbols since the module started."""
        events = await self._liquidations([p for p in positions if p.is_perp])
        return events + await self._funding()

    async def _liquidations(self, positions: list[Position]) -> list[PositionEvent]:
        if not positions:
            return []
        symbols = [symbol_of(p.base, p.quote) for p in positions]
        found = await self.exchange.fetch_positions(symbols)
        amounts = {
            str((f.get("info") or {}).get("symbol")): _decimal(
                (f.get("info") or {}).get("positionAmt")
            )
            for f in found
        }
        events = []
        for position, symbol in zip(positions, symbols, strict=True):
            if amounts.get(f"{position.base}{position.quote}", ZERO) != 0:
                continue
            since = int(position.opened_at.timestamp() * 1000) if position.opened_at else None
            forced = await self.exchange.fetch_my_liquidations(symbol, since)
            if not forced:
                log.error(
                    "a position is gone at the exchange without a liquidation record",
                    extra={"symbol": symbol},
                )
                continue
            info = forced[-1].get("info") or {}
            at = datetime.fromtimestamp(int(info.get("updateTime") or info["time"]) / 1000, UTC)
            events.append(
                PositionEvent(
                    f"liquidation:{self.name}:{info['orderId']}",
                    EventKind.LIQUIDATION,
                    position.base,
                    position.quote,
                    price=_decimal(info.get("avgPrice")),
                    quantity=position.quantity,
                    at=at,
                )
            )
        return events

    async def _funding(self) -> list[PositionEvent]:
        now = self._clock.now()
        if self._funding_since is None or (self._next_poll is not None and now < self._next_poll):
            return []
        self._next_poll = now + self.funding_poll
        events = []
        for symbol in sorted(self.symbols):
            base, quote = symbol.split("/")[0], symbol.split(":")[1]
            history = await self.exchange.fetch_funding_history(
                symbol, self._funding_since, None, {}
            )
            for entry in history:
                info = entry.get("info") or {}
                at = datetime.fromtimestamp(int(info.get("time", 0)) / 1000, UTC)
                events.append(
                    PositionEvent(
                        f"funding:{self.name}:{info.get('tranId') or info.get('time')}",
                        EventKind.FUNDING,
                        base,
                        quote,
                        price=ZERO,
                        amount=_decimal(info.get("income")),
                        at=at,
                    )
                )
        return events

    async def close(self) -> None:
        """Cancel every open order of our symbols, then close the HTTP session."""
        try:
            for symbol in sorted(self.symbols):
                await self.exchange.cancel_all_orders(symbol)
                log.info("open orders cancelled", extra={"symbol": symbol})
        finally:
            await close_exchange(self.exchange)


class ExchangeIntentResolver:
    """Open intents of an `ExchangeFuturesBroker`, settled by client order id."""

    def __init__(self, broker: ExchangeFuturesBroker) -> None:
        self.broker = broker

    async def resolve(self, order: Order, last: Fill | None) -> Fill | None:
        return await self.broker.lookup(order)


class ExchangeMarket:
    """Mark prices from the exchange (premiumIndex), as Decimals."""

    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange

    async def price(self, base: str, quote: str) -> Decimal:
        rate = await self.exchange.fetch_funding_rate(symbol_of(base, quote))
        return _decimal((rate.get("info") or {}).get("markPrice"))
