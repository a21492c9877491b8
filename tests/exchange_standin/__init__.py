"""A stand-in for Binance USDⓈ-M futures' REST API (fapi), for tests only: never shipped.

The live exchange cannot be reached from here, so the ccxt path is tested against this
small aiohttp server, which speaks the exchange's request and response format: signed
requests (HMAC-SHA256 of the query string with the API secret, `X-MBX-APIKEY`, a
`timestamp` within `recvWindow`) are checked and refused with the exchange's codes,
market orders fill at the mark (taker fee charged, isolated margin checked: -2019),
positions, funding (premiumIndex, income), leverage and margin type, open orders and
their cancellation, and rate limits (HTTP 429, code -1003) on demand.
"""

from .server import ExchangeStandin

__all__ = ["ExchangeStandin"]
