"""Perpetual futures: isolated margin, leverage, notional tiers, liquidation and funding.

- `tiers`: the exchange's notional tier (bracket) table: max leverage, maintenance margin
  rate and maintenance amount per notional range;
- `margin`: the pure, Decimal-only formulas (margin, liquidation price, margin ratio,
  funding payments);
- `events`: funding and liquidation ledger entries;
- `paper`: the paper broker (fills at the quote with fees, funding, liquidation);
- `exchange`: the live broker through ccxt (Binance USDⓈ-M).
"""
