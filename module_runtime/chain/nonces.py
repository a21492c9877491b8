"""Nonces for one sending account, handed out locally so concurrent sends never collide.

Asking the node for `eth_getTransactionCount(pending)` before every send races: two tasks
read the same count and the second transaction replaces (or is refused as) the first. So
the manager reads the chain once, then counts locally under an asyncio lock.

Every nonce handed out by `next()` comes back exactly once:
  * `confirm(n)`: a transaction with nonce n reached the node (mined, reverted on chain, or
    still pending) - the nonce is spent;
  * `release(n)`: nothing with nonce n is on the node (sending failed, or the transaction was
    dropped from the pool) - the nonce is a gap, and `next()` hands gaps out first (lowest
    first) so that later transactions of ours do not stay stuck behind it.
`resync()` re-reads the chain's pending count (after a dropped transaction, a nonce error from
the node, or another process sending with the same key) and turns every nonce between that
count and our counter that is neither held by an in-flight send nor known to be in the pool
into a gap to refill.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from web3 import AsyncWeb3

log = logging.getLogger(__name__)


class NonceManager:
    def __init__(self, w3: AsyncWeb3[Any], address: str) -> None:
        self._w3 = w3
        self.address = w3.to_checksum_address(address)
        self._lock = asyncio.Lock()
        self._next: int | None = None  # the lowest nonce never handed out
        self._gaps: set[int] = set()  # below _next, free to hand out again
        self._held: set[int] = set()  # handed out, neither confirmed nor released yet
        self._sent: set[int] = set()  # confirmed, not yet seen below the chain's pending count

    def __repr__(self) -> str:
        return (
            f"NonceManager({self.address}, next={self._next}, gaps={sorted(self._gaps)}, "
            f"held={sorted(self._held)})"
        )

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)

    @property
    def gaps(self) -> frozenset[int]:
        return frozenset(self._gaps)

    async def _chain_pending(self) -> int:
        return int(await self._w3.eth.get_transaction_count(self.address, "pending"))

    async def next(self) -> int:
        """Reserve a nonce: the lowest gap if any, else the next fresh one."""
        async with self._lock:
            if self._next is None:
                self._next = await self._chain_pending()
            if self._gaps:
                nonce = min(self._gaps)
                self._gaps.remove(nonce)
            else:
                nonce = self._next
                self._next += 1
            self._held.add(nonce)
            return nonce

    async def confirm(self, nonce: int) -> None:
        """A transaction with `nonce` reached the node: the nonce is spent."""
        async with self._lock:
            self._held.discard(nonce)
            self._sent.add(nonce)

    async def release(self, nonce: int) -> None:
        """Nothing with `nonce` is on the node (never sent, or dropped): hand it out again."""
        async with self._lock:
            self._held.discard(nonce)
            self._sent.discard(nonce)
            if self._next is not None and nonce < self._next:
                self._gaps.add(nonce)
                self._trim()

    async def resync(self, *, forget_sent: bool = False) -> list[int]:
        """Align with the chain's pending count; returns the gaps to refill, sorted.

        Nonces below the pending count are used and forgotten. A higher chain count (another
        sender with this key) moves our counter up. `forget_sent=True` also treats confirmed
        but unmined transactions as lost (use it when the node's pool was flushed, e.g. a
        restart); by default they keep their nonces.
        """
        async with self._lock:
            pending = await self._chain_pending()
            self._sent = {n for n in self._sent if n >= pending and not forget_sent}
            if self._next is None or pending >= self._next:
                self._next = pending
                self._gaps.clear()
            else:
                busy = self._held | self._sent
                self._gaps = {n for n in range(pending, self._next) if n not in busy}
                self._trim()
            log.debug("nonces resynced: chain pending=%d, %r", pending, self)
            return sorted(self._gaps)

    def _trim(self) -> None:
        """A gap right below the counter is just an unused number: lower the counter."""
        assert self._next is not None
        while self._next - 1 in self._gaps:
            self._next -= 1
            self._gaps.remove(self._next)
