"""Trading on Solana: SPL token swaps on a constant-product pool program.

- `rpc`: async JSON-RPC (aiohttp); `client`: build, sign, send, confirm (solders), memo
  per order; `spl`/`amm`: the SPL Token and pool program wire formats and the program's
  exact math; `pool`: pool snapshots from the real account state and the `MarketData`;
  `brokers`: paper and live brokers and the resolver that settles open intents from the
  chain; `wallet`: the keypair from TRADEPLANE_WALLET_KEY.
"""
