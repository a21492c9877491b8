"""`tradeplane-runtime`: run one trading module (the runtime pod's command).

    tradeplane-runtime run     validate the mounted config, serve /healthz /readyz
                               /metrics /status, run the module until SIGTERM
    tradeplane-runtime check   validate the config and exit (0 valid, 2 invalid)
    tradeplane-runtime migrate apply the database migrations (TRADEPLANE_DATABASE_URL)
    tradeplane-runtime report MODULE [--namespace NS]
                               a module's trades and PnL from the database

An invalid config never reaches the order path: the process says what is wrong, naming
the field, and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import prometheus_client

from module_runtime import config as runtime_config
from module_runtime import logs
from module_runtime.backtest import termination
from module_runtime.backtest.candles import CandleError
from module_runtime.backtest.runner import Backtest, BacktestFailed, pair_of
from module_runtime.backtest.sources import DATA_DIR, load_candles
from module_runtime.chain.market import chain_market, module_venues, pool_broker, simulated_market
from module_runtime.chain.pool_market import PoolMarket
from module_runtime.clock import Clock, SystemClock
from module_runtime.config import ConfigError, RuntimeConfig
from module_runtime.db import commands as db_commands
from module_runtime.db.runtime import ledger_for, persistence_for
from module_runtime.db.signals import running, signals_for
from module_runtime.host import ModuleHost
from module_runtime.market_data import MarketData
from module_runtime.modules.base import InvalidStrategyParams
from module_runtime.modules.registry import module_class_for, module_name
from module_runtime.server import serve
from module_runtime.synthetic_market import RandomWalkMarket
from tradeplane_operator.api.models import BacktestSpec, Mode

log = logging.getLogger("tradeplane.runtime")

EXIT_INVALID_CONFIG = 2
ENV_BACKTEST_DATA_DIR = "TRADEPLANE_BACKTEST_DATA_DIR"


def build_market(cfg: RuntimeConfig, clock: Clock) -> MarketData:
    """Synthetic: the random walk, or simulated pools for modules that trade pools
    (arbitrage, liquidity_provision). evm: the module's pools on the node at rpcUrl."""
    spec = cfg.module.spec
    market = spec.market_data
    venues = module_venues(module_class_for(spec), spec)  # [] for modules without pools
    step = timedelta(seconds=market.step_seconds)
    if market.source == "synthetic":
        if venues:
            return simulated_market(
                venues,
                clock=clock,
                seed=market.seed,
                start_price=market.start_price,
                volatility_percent=market.volatility_percent,
                step=step,
            )
        return RandomWalkMarket(
            clock,
            seed=market.seed,
            start_price=market.start_price,
            volatility_percent=market.volatility_percent,
            step=step,
        )
    if market.source == "evm" and venues and market.rpc_url:
        return chain_market(market.rpc_url, venues)
    if market.source == "evm":
        raise ConfigError(
            "spec.marketData.source evm needs spec.marketData.rpcUrl and a module that trades "
            f"pools (dex_trading, arbitrage, liquidity_provision), not {module_name(spec)!r}"
        )
    raise ConfigError(f"spec.marketData.source {market.source.value!r} is not supported yet")


def build_host(cfg: RuntimeConfig) -> ModuleHost:
    clock = SystemClock()
    try:
        spec = cfg.module.spec
        # a module with a venue of its own (solana_strategies) builds its market and broker
        parts_of = getattr(module_class_for(spec), "runtime_parts", None)
        parts = parts_of(spec, wallet_key=cfg.wallet_key, clock=clock) if parts_of else None
        if parts is not None:
            market, broker = parts
        else:
            market = build_market(cfg, clock)
            broker = None
        if isinstance(market, PoolMarket):  # pools: paper fills at the pool's exact quote
            broker = pool_broker(
                market, live=spec.mode == "live", wallet_key=cfg.wallet_key, clock=clock
            )
        if spec.type == "futures_trading" and spec.mode == "live":
            broker, market = futures_live(cfg, clock)
        host = ModuleHost(
            spec,
            name=cfg.name,
            namespace=cfg.namespace,
            market=market,
            clock=clock,
            broker=broker,
            start_halted=cfg.start_halted,
            portfolio_halt=cfg.portfolio_halt,
            ledger=ledger_for(cfg),  # PostgreSQL when TRADEPLANE_DATABASE_URL is set
            signals=signals_for(cfg),  # LISTEN/NOTIFY between modules, same database
        )
        collectors = getattr(host.module, "metric_collectors", None)  # e.g. LP fees and IL
        for collector in collectors(host.metrics.labels) if collectors else ():
            host.registry.register(collector)
        return host
    except (InvalidStrategyParams, ValueError, LookupError) as error:
        raise ConfigError(str(error)) from None


def futures_live(cfg: RuntimeConfig, clock: Clock) -> tuple[Any, MarketData]:
    """Live perpetuals: the exchange through ccxt, marks from the exchange."""
    from module_runtime.futures.exchange import (
        ExchangeFuturesBroker,
        ExchangeMarket,
        make_exchange,
    )
    from module_runtime.modules.futures_trading import FuturesParams

    params = FuturesParams.model_validate(cfg.module.spec.strategy)
    assert cfg.exchange_api_key and cfg.exchange_secret  # checked by config.load
    exchange = make_exchange(cfg.exchange_api_key, cfg.exchange_secret, params.exchange_url)
    return ExchangeFuturesBroker(exchange, clock=clock), ExchangeMarket(exchange)


async def _run_backtest(cfg: RuntimeConfig) -> int:
    """Replay the candles to the end, serving /healthz meanwhile; the report becomes the
    container's termination message (module_runtime.backtest.termination). Exit 0 when it
    ran to the end, 1 when a tick failed (e.g. a look-ahead), 2 for a bad config."""
    spec = cfg.module.spec
    try:
        module_class = module_class_for(spec)
        base, _ = pair_of(module_class, spec)
        candles = await load_candles(
            spec.backtest or BacktestSpec(),
            base=base,
            strategy=spec.strategy,
            data_dir=Path(os.environ.get(ENV_BACKTEST_DATA_DIR) or DATA_DIR),
        )
        backtest = Backtest(
            spec, candles, name=cfg.name, namespace=cfg.namespace, module_class=module_class
        )
    except (CandleError, InvalidStrategyParams, ValueError, LookupError) as error:
        raise ConfigError(str(error)) from None
    runner = await serve(backtest.host, cfg.listen_address, cfg.port)
    log.info(
        "backtest started",
        extra={"candles": len(candles), "source": candles.source, "mode": "backtest"},
    )
    task = asyncio.ensure_future(backtest.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        report = await task
    except asyncio.CancelledError:
        log.warning("backtest stopped before its end", extra={"candles": backtest.processed})
        return 143
    except BacktestFailed as error:
        log.error(f"backtest failed: {error}")
        return 1
    finally:
        await runner.cleanup()
    path = termination.write(report)
    log.info(
        "backtest finished",
        extra={"report": report.model_dump(mode="json", by_alias=True), "written_to": str(path)},
    )
    return 0


async def _run(cfg: RuntimeConfig) -> int:
    if cfg.module.spec.mode is Mode.BACKTEST:
        return await _run_backtest(cfg)
    host = build_host(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = await serve(host, cfg.listen_address, cfg.port)
    log.info(
        "module started",
        extra={"mode": cfg.module.spec.mode.value, "listen": f"{cfg.listen_address}:{cfg.port}"},
    )
    try:
        async with persistence_for(host, stop), running(host.signals):  # no-op without a db
            await host.run(stop)
    finally:
        await runner.cleanup()
    log.info("module stopped cleanly")
    return 0


def _fail(message: str) -> int:
    sys.stderr.write(json.dumps({"level": "ERROR", "msg": message, "exit": 2}) + "\n")
    return EXIT_INVALID_CONFIG


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tradeplane-runtime", description=__doc__)
    parser.add_argument("command", choices=["run", "check", "migrate", "report"])
    parser.add_argument("module", nargs="?", help="report: the module's name")
    parser.add_argument("--namespace", default="default", help="report: the module's namespace")
    args = parser.parse_args(argv)
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    if args.command == "migrate":
        sys.exit(db_commands.migrate_command())
    if args.command == "report":
        sys.exit(db_commands.report_command(args.module, args.namespace))
    try:
        cfg = runtime_config.load()
    except ConfigError as error:
        sys.exit(_fail(str(error)))
    logs.configure(
        cfg.module.spec.log_level.value,
        json_output=cfg.json_logs,
        static={"module": cfg.name, "namespace": cfg.namespace},
        secrets=cfg.secrets,
    )
    if args.command == "check":
        try:
            build_host(cfg)
        except ConfigError as error:
            sys.exit(_fail(str(error)))
        print(f"config of {cfg.namespace}/{cfg.name} is valid")
        return
    try:
        sys.exit(asyncio.run(_run(cfg)))
    except ConfigError as error:
        sys.exit(_fail(str(error)))


if __name__ == "__main__":
    main()
