"""A module's trade and PnL summary, read from the database (`tradeplane-runtime report`).

Statistics are re-derived from the ledger exactly as the running module derives them
(the booked fills replayed through `module_runtime.positions`, then
`module_runtime.trade_stats.compute_stats`); open positions are valued at cost, since
market marks are not stored (the latest metrics snapshot shows the last marked values).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from module_runtime.trade_stats import compute_stats, decimal_str

from .ledger import load_state


async def module_report(conn: Any, namespace: str, name: str) -> dict[str, Any] | None:
    module = await conn.fetchrow(
        "SELECT id, type, config, created_at, updated_at FROM modules "
        "WHERE namespace = $1 AND name = $2",
        namespace,
        name,
    )
    if module is None:
        return None
    config = json.loads(module["config"]) if module["config"] else {}
    allocation = Decimal(str(config.get("capital", {}).get("allocation", "0")))
    state = await load_state(conn, module["id"])
    positions = state.book.positions()
    stats = (
        compute_stats(state.trades, capital=allocation, positions=positions)
        if (allocation > 0)
        else None
    )
    by_status = {
        r["status"]: r["n"]
        for r in await conn.fetch(
            "SELECT status, count(*) AS n FROM orders WHERE module_id = $1 GROUP BY status",
            module["id"],
        )
    }
    totals = await conn.fetchrow(
        "SELECT COALESCE(sum(fee) FILTER (WHERE status = 'filled'), 0) AS fees, "
        "COALESCE(sum(gas_fee), 0) AS gas, "
        "COALESCE(sum(filled_quantity * fill_price) FILTER (WHERE status = 'filled'), 0) "
        "AS volume FROM orders WHERE module_id = $1",
        module["id"],
    )
    events = {
        r["kind"]: r["n"]
        for r in await conn.fetch(
            "SELECT kind, count(*) AS n FROM risk_events WHERE module_id = $1 GROUP BY kind",
            module["id"],
        )
    }
    snapshot = await conn.fetchrow(
        "SELECT at, stats FROM module_metrics WHERE module_id = $1 ORDER BY at DESC, id DESC "
        "LIMIT 1",
        module["id"],
    )
    return {
        "module": f"{namespace}/{name}",
        "type": module["type"],
        "capital": decimal_str(allocation),
        "currency": config.get("capital", {}).get("currency", ""),
        "orders": by_status,
        "openIntents": len(state.open_intents()),
        "rejections": events.get("rejection", 0),
        "halts": events.get("halt", 0),
        "volume": decimal_str(totals["volume"]),
        "fees": decimal_str(totals["fees"]),
        "gasFees": decimal_str(totals["gas"]),
        "stats": None if stats is None else stats.as_json(),
        "positions": [
            {
                "pair": f"{p.base}/{p.quote}",
                "quantity": decimal_str(p.quantity),
                "cost": decimal_str(p.cost),
                "avgCost": decimal_str(p.avg_cost),
            }
            for p in positions
        ],
        "lastSnapshot": None
        if snapshot is None
        else {"at": snapshot["at"].isoformat(), "stats": json.loads(snapshot["stats"])},
    }


def format_report(report: dict[str, Any]) -> str:
    stats = report["stats"] or {}
    orders = report["orders"]
    lines = [
        f"module        {report['module']} ({report['type']})",
        f"capital       {report['capital']} {report['currency']}",
        "orders        "
        + (", ".join(f"{k} {v}" for k, v in sorted(orders.items())) or "none")
        + f"; open intents {report['openIntents']}; rejected by risk {report['rejections']}",
        f"halts         {report['halts']}",
        f"volume        {report['volume']}   fees {report['fees']}   gas {report['gasFees']}",
        f"trades        {stats.get('trades', 0)} (wins {stats.get('wins', 0)}, "
        f"losses {stats.get('losses', 0)}, breakeven {stats.get('breakeven', 0)})",
        f"realized PnL  {stats.get('realizedPnl', '0')}",
        f"win rate      {stats.get('winRate')}   profit factor {stats.get('profitFactor')}",
        f"max drawdown  {stats.get('maxDrawdown', '0')} ({stats.get('maxDrawdownPercent', '0')} %)",
    ]
    for p in report["positions"]:
        lines.append(
            f"position      {p['pair']}: {p['quantity']} at avg cost {p['avgCost']} "
            f"(cost {p['cost']})"
        )
    if report["lastSnapshot"]:
        snap = report["lastSnapshot"]
        lines.append(
            f"last snapshot {snap['at']}: unrealized PnL {snap['stats'].get('unrealizedPnl')}"
        )
    lines.append("json " + json.dumps(report, sort_keys=True))
    return "\n".join(lines)
