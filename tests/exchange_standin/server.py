"""The fapi stand-in's state and handlers (see the package docstring)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

D = Decimal
ZERO = Decimal(0)
Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.Response]]


def error(code: int, msg: str, status: int = 400) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


@dataclass
class Fill:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    reduce_only: bool
    time_ms: int


@dataclass
class StandinOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal
    status: str
    executed: Decimal = ZERO
    avg_price: Decimal = ZERO
    reduce_only: bool = False
    time_ms: int = 0

    def body(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status,
            "clientOrderId": self.client_order_id,
            "price": str(self.price),
            "avgPrice": str(self.avg_price),
            "origQty": str(self.quantity),
            "executedQty": str(self.executed),
            "cumQuote": str(self.executed * self.avg_price),
            "timeInForce": "GTC",
            "type": self.type,
            "reduceOnly": self.reduce_only,
            "closePosition": False,
            "side": self.side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": self.type,
            "time": self.time_ms,
            "updateTime": self.time_ms,
        }


@dataclass
class Position:
    amount: Decimal = ZERO  # signed: > 0 long, < 0 short
    entry: Decimal = ZERO
    margin: Decimal = ZERO  # isolated


@dataclass
class ExchangeStandin:
    api_key: str
    secret: str
    balance: Decimal = Decimal(10_000)
    taker_fee: Decimal = Decimal("0.0005")
    marks: dict[str, Decimal] = field(default_factory=lambda: {"BTCUSDT": D(50_000)})
    funding_rate: Decimal = Decimal("0.0001")
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[int, StandinOrder] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    force_orders: list[StandinOrder] = field(default_factory=list)
    income_history: list[dict[str, Any]] = field(default_factory=list)
    rate_limited: int = 0  # the next N signed requests get HTTP 429 / -1003
    requests: list[str] = field(default_factory=list)
    # the test's hooks: awaited when an order request arrives (before anything happens),
    # and after an order is filled, before the answer is sent
    before_order: Callable[[dict[str, str]], Awaitable[None]] | None = None
    after_fill: Callable[[StandinOrder], Awaitable[None]] | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    # ---- the app -----------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        public: dict[tuple[str, str], Handler] = {
            ("GET", "/fapi/v1/ping"): self.ping,
            ("GET", "/fapi/v1/time"): self.time,
            ("GET", "/fapi/v1/exchangeInfo"): self.exchange_info,
            ("GET", "/fapi/v1/premiumIndex"): self.premium_index,
        }
        signed: dict[tuple[str, str], Handler] = {
            ("POST", "/fapi/v1/order"): self.new_order,
            ("GET", "/fapi/v1/order"): self.query_order,
            ("DELETE", "/fapi/v1/order"): self.cancel_order,
            ("GET", "/fapi/v1/openOrders"): self.open_orders,
            ("DELETE", "/fapi/v1/allOpenOrders"): self.cancel_all,
            ("GET", "/fapi/v1/userTrades"): self.user_trades,
            ("POST", "/fapi/v1/leverage"): self.set_leverage,
            ("POST", "/fapi/v1/marginType"): self.set_margin_type,
            ("GET", "/fapi/v2/positionRisk"): self.position_risk,
            ("GET", "/fapi/v3/positionRisk"): self.position_risk,
            ("GET", "/fapi/v2/balance"): self.account_balance,
            ("GET", "/fapi/v1/income"): self.income,
            ("GET", "/fapi/v1/forceOrders"): self.forced,
            ("GET", "/fapi/v1/leverageBracket"): self.brackets,
        }

        async def route(request: web.Request) -> web.Response:
            key = (request.method, request.path)
            self.requests.append(f"{request.method} {request.path}")
            body = await request.text() if request.can_read_body else ""
            params = dict(request.query)
            params.update(parse_qsl(body))
            if key in public:
                return await public[key](request, params)
            if key in signed:
                refused = self.check_signature(request, params, body)
                if refused is not None:
                    return refused
                if self.rate_limited > 0:
                    self.rate_limited -= 1
                    return error(
                        -1003,
                        "Too many requests; current limit of IP(127.0.0.1) is 2400 requests "
                        "per minute. Please use the websocket for live updates to avoid "
                        "polling the API.",
                        status=429,
                    )
                return await signed[key](request, params)
            return error(-1000, f"An unknown error occurred while processing the request. {key}")

        app.router.add_route("*", "/{tail:.*}", route)
        return app

    def check_signature(
        self, request: web.Request, params: dict[str, str], body: str
    ) -> web.Response | None:
        """Binance's scheme: HMAC-SHA256, keyed with the secret, of the query string
        concatenated with the body, as sent, without the signature parameter."""
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            return error(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        signature = params.pop("signature", None)
        if signature is None:
            return error(
                -1102,
                "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
            )
        total = request.query_string + body
        payload = "&".join(p for p in total.split("&") if not p.startswith("signature="))
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return error(-1022, "Signature for this request is not valid.")
        try:
            stamp = int(params["timestamp"])
        except (KeyError, ValueError):
            return error(
                -1102,
                "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
            )
        window = int(params.get("recvWindow", "5000"))
        if abs(time.time() * 1000 - stamp) > window:
            return error(-1021, "Timestamp for this request is outside of the recvWindow.")
        return None

    # ---- public ------------------------------------------------------------------

    async def ping(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response({})

    async def time(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def exchange_info(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbols = []
        for symbol in self.marks:
            base, quote = symbol[:-4], symbol[-4:]
            symbols.append(
                {
                    "symbol": symbol,
                    "pair": symbol,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": 1569398400000,
                    "status": "TRADING",
                    "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000",
                    "baseAsset": base,
                    "quoteAsset": quote,
                    "marginAsset": quote,
                    "pricePrecision": 2,
                    "quantityPrecision": 3,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "underlyingSubType": [],
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "orderTypes": ["LIMIT", "MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": "0.10",
                            "maxPrice": "4529764",
                            "tickSize": "0.10",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": "0.001",
                            "maxQty": "1000",
                            "stepSize": "0.001",
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": "0.001",
                            "maxQty": "120",
                            "stepSize": "0.001",
                        },
                        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                        {"filterType": "MIN_NOTIONAL", "notional": "100"},
                    ],
                }
            )
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [],
                "exchangeFilters": [],
                "assets": [{"asset": "USDT", "marginAvailable": True}],
                "symbols": symbols,
            }
        )

    async def premium_index(self, request: web.Request, params: dict[str, str]) -> web.Response:
        def one(symbol: str) -> dict[str, Any]:
            mark = self.marks[symbol]
            return {
                "symbol": symbol,
                "markPrice": str(mark),
                "indexPrice": str(mark),
                "estimatedSettlePrice": str(mark),
                "lastFundingRate": str(self.funding_rate),
                "interestRate": "0.00010000",
                "nextFundingTime": (int(time.time()) // 28800 + 1) * 28800 * 1000,
                "time": int(time.time() * 1000),
            }

        symbol = params.get("symbol")
        if symbol is None:
            return web.json_response([one(s) for s in self.marks])
        if symbol not in self.marks:
            return error(-1121, "Invalid symbol.")
        return web.json_response(one(symbol))

    # ---- trading -----------------------------------------------------------------

    def available(self) -> Decimal:
        return self.balance - sum((p.margin for p in self.positions.values()), D(0))

    async def new_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        if self.before_order is not None:
            await self.before_order(params)
        symbol = params.get("symbol", "")
        if symbol not in self.marks:
            return error(-1121, "Invalid symbol.")
        side, kind = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL") or kind not in ("MARKET", "LIMIT"):
            return error(-1116, "Invalid orderType.")
        client_id = params.get("newClientOrderId") or f"x-{next(self._ids)}"
        if any(o.client_order_id == client_id for o in self.orders.values()):
            return error(-4116, "ClientOrderId is duplicated.")
        quantity = D(params["quantity"])
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        position = self.positions.setdefault(symbol, Position())
        signed = quantity if side == "BUY" else -quantity
        mark = self.marks[symbol]
        order = StandinOrder(
            next(self._ids),
            client_id,
            symbol,
            side,
            kind,
            quantity,
            D(params.get("price", "0")),
            "NEW",
            reduce_only=reduce_only,
            time_ms=int(time.time() * 1000),
        )
        if reduce_only and (position.amount == 0 or (position.amount > 0) == (signed > 0)):
            return error(-2022, "ReduceOnly Order is rejected.")
        if kind == "LIMIT":
            self.orders[order.order_id] = order  # rests: the stand-in never crosses it
            return web.json_response(order.body())
        leverage = self.leverage.get(symbol, 20)
        opening = position.amount == 0 or (position.amount > 0) == (signed > 0)
        fee = quantity * mark * self.taker_fee
        if opening and quantity * mark / leverage + fee > self.available():
            return error(-2019, "Margin is insufficient.")
        self.book(position, signed, mark, leverage)
        self.balance -= fee
        order.status, order.executed, order.avg_price = "FILLED", quantity, mark
        self.orders[order.order_id] = order
        self.fills.append(
            Fill(
                order.order_id,
                client_id,
                symbol,
                side,
                quantity,
                mark,
                fee,
                reduce_only,
                order.time_ms,
            )
        )
        if self.after_fill is not None:
            await self.after_fill(order)
        return web.json_response(order.body())

    def book(self, position: Position, signed: Decimal, price: Decimal, leverage: int) -> None:
        if position.amount == 0 or (position.amount > 0) == (signed > 0):
            total = position.amount + signed
            position.entry = (position.entry * abs(position.amount) + price * abs(signed)) / abs(
                total
            )
            position.margin += abs(signed) * price / leverage
            position.amount = total
            return
        closed = min(abs(signed), abs(position.amount))
        direction = 1 if position.amount > 0 else -1
        self.balance += direction * closed * (price - position.entry)
        share = closed / abs(position.amount)
        position.margin -= position.margin * share
        position.amount += signed
        if position.amount == 0:
            position.entry, position.margin = D(0), D(0)

    def find(self, params: dict[str, str]) -> StandinOrder | None:
        if "orderId" in params:
            return self.orders.get(int(params["orderId"]))
        client = params.get("origClientOrderId")
        return next((o for o in self.orders.values() if o.client_order_id == client), None)

    async def query_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        order = self.find(params)
        if order is None:
            return error(-2013, "Order does not exist.")
        return web.json_response(order.body())

    async def cancel_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        order = self.find(params)
        if order is None:
            return error(-2011, "Unknown order sent.")
        if order.status != "NEW":
            return error(-2011, "Unknown order sent.")
        order.status = "CANCELED"
        return web.json_response(order.body())

    def resting(self, symbol: str | None = None) -> list[StandinOrder]:
        return [
            o
            for o in self.orders.values()
            if o.status == "NEW" and (symbol is None or o.symbol == symbol)
        ]

    async def open_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response([o.body() for o in self.resting(params.get("symbol"))])

    async def cancel_all(self, request: web.Request, params: dict[str, str]) -> web.Response:
        for order in self.resting(params.get("symbol")):
            order.status = "CANCELED"
        return web.json_response(
            {"code": 200, "msg": "The operation of cancel all open order is done."}
        )

    async def user_trades(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = params.get("symbol")
        order_id = params.get("orderId")
        trades = [
            {
                "buyer": f.side == "BUY",
                "commission": str(f.fee),
                "commissionAsset": f.symbol[-4:],
                "id": f.order_id * 10,
                "maker": False,
                "orderId": f.order_id,
                "price": str(f.price),
                "qty": str(f.quantity),
                "quoteQty": str(f.price * f.quantity),
                "realizedPnl": "0",
                "side": f.side,
                "positionSide": "BOTH",
                "symbol": f.symbol,
                "time": f.time_ms,
            }
            for f in self.fills
            if (symbol is None or f.symbol == symbol)
            and (order_id is None or str(f.order_id) == order_id)
        ]
        return web.json_response(trades)

    async def set_leverage(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = params.get("symbol", "")
        if symbol not in self.marks:
            return error(-1121, "Invalid symbol.")
        leverage = int(params["leverage"])
        if not 1 <= leverage <= 125:
            return error(-4028, f"Leverage {leverage} is not valid")
        self.leverage[symbol] = leverage
        return web.json_response(
            {"leverage": leverage, "maxNotionalValue": "1000000", "symbol": symbol}
        )

    async def set_margin_type(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = params.get("symbol", "")
        wanted = params.get("marginType", "").upper()
        if self.margin_type.get(symbol) == wanted:
            return error(-4046, "No need to change margin type.")
        self.margin_type[symbol] = wanted
        return web.json_response({"code": 200, "msg": "success"})

    async def position_risk(self, request: web.Request, params: dict[str, str]) -> web.Response:
        rows = []
        for symbol, mark in self.marks.items():
            if params.get("symbol") not in (None, symbol):
                continue
            p = self.positions.get(symbol, Position())
            rows.append(
                {
                    "symbol": symbol,
                    "positionAmt": str(p.amount),
                    "entryPrice": str(p.entry),
                    "breakEvenPrice": str(p.entry),
                    "markPrice": str(mark),
                    "unRealizedProfit": str(p.amount * (mark - p.entry)),
                    "liquidationPrice": "0",
                    "leverage": str(self.leverage.get(symbol, 20)),
                    "maxNotionalValue": "1000000",
                    "marginType": self.margin_type.get(symbol, "CROSSED").lower(),
                    "isolatedMargin": str(p.margin),
                    "isAutoAddMargin": "false",
                    "positionSide": "BOTH",
                    "notional": str(p.amount * mark),
                    "isolatedWallet": str(p.margin),
                    "updateTime": int(time.time() * 1000),
                }
            )
        return web.json_response(rows)

    async def account_balance(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response(
            [
                {
                    "accountAlias": "standin",
                    "asset": "USDT",
                    "balance": str(self.balance),
                    "crossWalletBalance": str(self.balance),
                    "crossUnPnl": "0",
                    "availableBalance": str(self.available()),
                    "maxWithdrawAmount": str(self.available()),
                    "marginAvailable": True,
                    "updateTime": int(time.time() * 1000),
                }
            ]
        )

    async def income(self, request: web.Request, params: dict[str, str]) -> web.Response:
        rows = [
            r
            for r in self.income_history
            if params.get("incomeType") in (None, r["incomeType"])
            and params.get("symbol") in (None, r["symbol"])
            and int(params.get("startTime", "0")) <= r["time"]
        ]
        return web.json_response(rows)

    async def brackets(self, request: web.Request, params: dict[str, str]) -> web.Response:
        """The exchange's notional tiers (the published BTCUSDT brackets for every symbol);
        numbers, as Binance sends them."""
        from module_runtime.futures.tiers import BTC_TIERS

        rows = [
            {
                "symbol": symbol,
                "brackets": [
                    {
                        "bracket": i + 1,
                        "initialLeverage": lev,
                        "notionalCap": int(cap),
                        "notionalFloor": int(floor),
                        "maintMarginRatio": float(mmr),
                        "cum": float(cum),
                    }
                    for i, (floor, cap, lev, mmr, cum) in enumerate(BTC_TIERS)
                ],
            }
            for symbol in self.marks
            if params.get("symbol") in (None, symbol)
        ]
        return web.json_response(rows)

    async def forced(self, request: web.Request, params: dict[str, str]) -> web.Response:
        rows = [
            o.body()
            for o in self.force_orders
            if params.get("symbol") in (None, o.symbol)
            and int(params.get("startTime", "0")) <= o.time_ms
        ]
        return web.json_response(rows)

    # ---- what the exchange does by itself (the tests trigger it) -----------------------

    def pay_funding(self, symbol: str, rate: Decimal) -> Decimal:
        """A funding time: the position pays amount x mark x rate (a long, rate > 0)."""
        position = self.positions.get(symbol, Position())
        amount = -position.amount * self.marks[symbol] * rate
        self.balance += amount
        self.income_history.append(
            {
                "symbol": symbol,
                "incomeType": "FUNDING_FEE",
                "income": str(amount),
                "asset": symbol[-4:],
                "info": "FUNDING_FEE",
                "time": int(time.time() * 1000),
                "tranId": next(self._ids),
                "tradeId": "",
            }
        )
        return amount

    def liquidate(self, symbol: str, price: Decimal) -> StandinOrder:
        """The liquidation engine closes the isolated position at `price`; its margin is
        lost (the insurance fund keeps what is left)."""
        position = self.positions[symbol]
        order = StandinOrder(
            next(self._ids),
            f"autoclose-{next(self._ids)}",
            symbol,
            "SELL" if position.amount > 0 else "BUY",
            "LIMIT",
            abs(position.amount),
            price,
            "FILLED",
            executed=abs(position.amount),
            avg_price=price,
            time_ms=int(time.time() * 1000),
        )
        self.balance -= position.margin
        self.positions[symbol] = Position()
        self.force_orders.append(order)
        return order

    # ---- running it ----------------------------------------------------------------

    async def start(self, host: str, port: int) -> web.AppRunner:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return runner


async def serve_forever(standin: ExchangeStandin, host: str, port: int) -> None:
    runner = await standin.start(host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
