"""Signing, sending and confirming transactions; reading what a landed one did.

`TxClient.submit` builds a legacy transaction with the latest blockhash, a Memo
instruction naming the order (so a restarted runtime can find the transaction of an
open intent on chain: `find_by_memo`), signs with the wallet keypair and sends without
preflight (a program's refusal then lands, fee paid, and is final rather than a
simulation error). It then confirms by polling signature statuses until the transaction
is found, or until the chain's block height passes the blockhash's last valid height:
then it can never land and is DROPPED. A blockhash the node no longer knows is retried
once with a fresh one (that transaction was refused, so it cannot land). The keypair is
held here only; it is never logged or repr'd.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction, VersionedTransaction

from ..orders import OrderStatus
from .rpc import CONNECTION_ERRORS, SolanaRpc, SolanaRpcError

log = logging.getLogger(__name__)

MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
MEMO_PREFIX = "tradeplane:"
LAMPORTS_PER_SOL = 10**9


def memo_ix(text: str) -> Instruction:
    return Instruction(MEMO_PROGRAM_ID, text.encode(), [])


def order_memo(order_id: str) -> str:
    return MEMO_PREFIX + order_id


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """What became of a transaction. FILLED: landed and succeeded; REVERTED: landed and
    failed (fee paid); DROPPED: can never land; SENT: not known yet."""

    status: OrderStatus
    signature: str | None
    fee_lamports: int = 0
    error: Any = None
    token_deltas: Mapping[str, int] = field(default_factory=dict)
    slot: int | None = None
    reason: str | None = None
    memos: tuple[str, ...] = ()


def outcome_of(signature: str, record: Mapping[str, Any]) -> TxOutcome:
    """A landed transaction's outcome from getTransaction (base64 encoding)."""
    meta = record.get("meta") or {}
    keys: list[str] = []
    memos: list[str] = []
    encoded = record.get("transaction")
    if encoded:
        tx = VersionedTransaction.from_bytes(base64.b64decode(encoded[0]))
        message = tx.message
        keys = [str(k) for k in message.account_keys]
        for ix in message.instructions:
            if keys[ix.program_id_index] == str(MEMO_PROGRAM_ID):
                memos.append(bytes(ix.data).decode(errors="replace"))
    deltas: dict[str, int] = {}
    for sign, balances in (
        (-1, meta.get("preTokenBalances") or []),
        (1, meta.get("postTokenBalances") or []),
    ):
        for entry in balances:
            key = keys[int(entry["accountIndex"])] if keys else str(entry["accountIndex"])
            deltas[key] = deltas.get(key, 0) + sign * int(entry["uiTokenAmount"]["amount"])
    error = meta.get("err")
    return TxOutcome(
        OrderStatus.REVERTED if error is not None else OrderStatus.FILLED,
        signature,
        fee_lamports=int(meta.get("fee") or 0),
        error=error,
        token_deltas={k: v for k, v in deltas.items() if v},
        slot=record.get("slot"),
        reason=None if error is None else f"transaction failed: {error}",
        memos=tuple(memos),
    )


class TxClient:
    def __init__(
        self,
        rpc: SolanaRpc,
        keypair: Keypair,
        *,
        poll_seconds: float = 0.2,
        confirm_timeout_seconds: float = 90.0,
    ) -> None:
        self.rpc = rpc
        self._keypair = keypair
        self.poll_seconds = poll_seconds
        self.confirm_timeout_seconds = confirm_timeout_seconds

    def __repr__(self) -> str:
        return f"TxClient({self.rpc!r}, wallet={self.wallet})"

    @property
    def wallet(self) -> Pubkey:
        return self._keypair.pubkey()

    async def submit(
        self,
        instructions: Sequence[Instruction],
        *,
        memo: str | None = None,
        signers: Sequence[Keypair] = (),
    ) -> TxOutcome:
        ixs = [*instructions, *([memo_ix(memo)] if memo else [])]
        signature: str | None = None
        for attempt in (1, 2):
            try:
                blockhash, last_valid = await self.rpc.latest_blockhash()
            except (*CONNECTION_ERRORS, SolanaRpcError) as error:
                return TxOutcome(OrderStatus.DROPPED, None, reason=f"not sent: {error!r}")
            tx = Transaction([self._keypair, *signers], Message(ixs, self.wallet), blockhash)
            signature = str(tx.signatures[0])
            try:
                await self.rpc.send(tx, preflight=False)
            except SolanaRpcError as error:
                if error.blockhash_not_found and attempt == 1:
                    continue  # refused, cannot land: again with a fresh blockhash
                return TxOutcome(OrderStatus.DROPPED, signature, reason=f"refused: {error.message}")
            except CONNECTION_ERRORS as error:
                # it may or may not have reached the node: find out by its signature
                log.warning(
                    "send failed, confirming anyway",
                    extra={"signature": signature, "error": repr(error)},
                )
            return await self.confirm(signature, last_valid)
        return TxOutcome(OrderStatus.DROPPED, signature, reason="blockhash not found twice")

    async def confirm(self, signature: str, last_valid_height: int) -> TxOutcome:
        """Poll until landed (FILLED/REVERTED), expired (DROPPED) or timed out (SENT)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout_seconds
        while True:
            try:
                found = await self.lookup(signature)
                if found is not None:
                    return found
                if await self.rpc.block_height() > last_valid_height:
                    found = await self.lookup(signature)  # landed just before expiry?
                    return found or TxOutcome(
                        OrderStatus.DROPPED, signature, reason="blockhash expired: never landed"
                    )
            except (*CONNECTION_ERRORS, SolanaRpcError) as error:
                log.warning(
                    "confirmation poll failed", extra={"signature": signature, "error": repr(error)}
                )
            if loop.time() >= deadline:
                return TxOutcome(
                    OrderStatus.SENT,
                    signature,
                    reason=f"unconfirmed after {self.confirm_timeout_seconds}s",
                )
            await asyncio.sleep(self.poll_seconds)

    async def lookup(self, signature: str) -> TxOutcome | None:
        """The landed transaction's outcome, or None if the chain does not have it."""
        (status,) = await self.rpc.signature_statuses([signature])
        if status is None:
            return None
        record = await self.rpc.transaction(signature)
        if record is None:
            return None
        return outcome_of(signature, record)

    async def find_by_memo(self, memo: str, *, limit: int = 1000) -> TxOutcome | None:
        """The wallet's landed transaction carrying `memo`, newest first, or None."""
        for entry in await self.rpc.signatures_for(self.wallet, limit=limit):
            record = await self.rpc.transaction(entry["signature"])
            if record is None:
                continue
            outcome = outcome_of(entry["signature"], record)
            if memo in outcome.memos:
                return outcome
        return None
