"""Backtests: a module's own strategy over historical candles (`spec.mode: backtest`).

`candles` (the series and its CSV / synthetic sources), `evm` (one candle per block from
a pool over JSON-RPC), `replay` (the clock and the look-ahead-proof market data),
`runner` (the loop and the report), `sources` (the spec -> candles), `termination`
(how the report leaves the pod).
"""
