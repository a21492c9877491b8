"""Sign and send one transaction, then report what became of it.

`TxSender.send` never raises for what the chain or the node decides: a revert (at gas
estimation or on chain), a refusal by the node, a drop from the pool or a receipt timeout
all come back as a `TxOutcome` with a status and a reason. The private key lives only inside
`Signer`, whose repr shows the address alone, and is never logged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

from aiohttp import ClientError
from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3
from web3.exceptions import (
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)

from ..orders import OrderStatus
from .nonces import NonceManager

log = logging.getLogger(__name__)

# Transport failures: the request may or may not have reached the node.
TRANSPORT_ERRORS = (ClientError, TimeoutError, OSError)
# Anything that leaves a sent transaction's fate unknown to us.
UNKNOWN_OUTCOME_ERRORS = (ClientError, TimeoutError, OSError, Web3Exception)


class Signer:
    """Holds a private key and signs with it; it never shows the key.

    repr/str show the address only, pickling is refused, and a malformed key raises an
    error that does not echo it.
    """

    __slots__ = ("_account",)

    def __init__(self, private_key: str | bytes) -> None:
        try:
            self._account: LocalAccount = Account.from_key(private_key)
        except Exception:  # whatever it was, its message must not echo the key
            raise ValueError("invalid private key") from None

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign(self, tx: dict[str, Any]) -> SignedTransaction:
        return self._account.sign_transaction(tx)

    def __repr__(self) -> str:
        return f"Signer(address={self.address})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Signer holds a private key and cannot be pickled")


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """What became of one transaction.

    status: FILLED (mined, succeeded), REVERTED (refused: at gas estimation, by the node,
    or mined with status 0), DROPPED (never mined and gone from the node: nothing happened),
    SENT (still pending when we stopped waiting, or the node became unreachable after
    sending: the outcome is unknown, look the hash up later).
    """

    status: OrderStatus
    tx_hash: str | None = None
    nonce: int | None = None
    reason: str | None = None
    gas_used: int = 0
    effective_gas_price: int = 0  # wei per gas
    block_number: int | None = None
    logs: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def fee_wei(self) -> int:
        """Network fee paid (gas used x effective gas price); also paid by a mined revert."""
        return self.gas_used * self.effective_gas_price


def revert_reason(error: BaseException) -> str:
    """The contract's revert message without the node's "execution reverted: " prefix."""
    message = getattr(error, "message", None) or str(error)
    for prefix in ("execution reverted: ", "execution reverted:"):
        if message.startswith(prefix):
            return message[len(prefix) :].strip() or "execution reverted"
    return message


def _is_already_known(error: Web3RPCError) -> bool:
    text = str(error).lower()
    return "already known" in text or "already imported" in text or "known transaction" in text


def _is_nonce_conflict(error: Web3RPCError) -> bool:
    text = str(error).lower()
    return "nonce too low" in text or "replacement" in text or "nonce too high" in text


class TxSender:
    """Sends transactions from one account: gas from `estimate_gas` x `gas_margin`,
    EIP-1559 fees when the node reports a base fee (legacy gas price otherwise), nonces
    from a `NonceManager`, and a bounded wait for the receipt.
    """

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        signer: Signer,
        *,
        nonces: NonceManager | None = None,
        gas_margin: Decimal = Decimal("1.25"),
        priority_fee_wei: int | None = None,
        receipt_timeout: float = 60.0,
        poll_interval: float = 0.1,
        send_attempts: int = 3,
    ) -> None:
        if gas_margin < 1:
            raise ValueError("gas_margin must be at least 1")
        self.w3 = w3
        self.signer = signer
        self.nonces = nonces or NonceManager(w3, signer.address)
        self.gas_margin = gas_margin
        self.priority_fee_wei = priority_fee_wei
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self.send_attempts = send_attempts
        self._chain_id: int | None = None

    def __repr__(self) -> str:
        return f"TxSender({self.signer!r}, gas_margin={self.gas_margin})"

    @property
    def address(self) -> str:
        return self.signer.address

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self.w3.eth.chain_id)
        return self._chain_id

    async def fees(self) -> dict[str, int]:
        """Fee fields for a new transaction, from the node's current view."""
        block = await self.w3.eth.get_block("latest")
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:
            return {"gasPrice": int(await self.w3.eth.gas_price)}
        tip = self.priority_fee_wei
        if tip is None:
            tip = int(await self.w3.eth.max_priority_fee)
        # Twice the base fee survives six full blocks of base-fee growth (12.5% each).
        return {"maxFeePerGas": 2 * int(base_fee) + tip, "maxPriorityFeePerGas": tip, "type": 2}

    async def send(
        self, to: str, data: str, *, value: int = 0, gas: int | None = None
    ) -> TxOutcome:
        """Estimate, sign, send and wait. Reverts found at estimation cost no nonce and no gas."""
        call: dict[str, Any] = {
            "from": self.address,
            "to": self.w3.to_checksum_address(to),
            "data": data,
        }
        if value:
            call["value"] = value
        if gas is None:
            try:
                estimate = int(await self.w3.eth.estimate_gas(call))  # type: ignore[arg-type]
            except ContractLogicError as e:
                return TxOutcome(OrderStatus.REVERTED, reason=revert_reason(e))
            except Web3RPCError as e:  # e.g. insufficient funds for gas
                return TxOutcome(OrderStatus.REVERTED, reason=f"node refused: {e}")
            gas = math.ceil(estimate * self.gas_margin)
        tx: dict[str, Any] = {
            **call,
            "value": value,
            "gas": gas,
            "chainId": await self.chain_id(),
            **await self.fees(),
        }
        for attempt in range(1, self.send_attempts + 1):
            nonce = await self.nonces.next()
            signed = self.signer.sign({**tx, "nonce": nonce})
            tx_hash = "0x" + bytes(signed.hash).hex()
            try:
                await self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Web3RPCError as e:
                if _is_already_known(e):  # a retried request that had arrived after all
                    pass
                elif _is_nonce_conflict(e) and attempt < self.send_attempts:
                    log.warning("nonce %d refused (%s); resyncing and retrying", nonce, e)
                    await self.nonces.release(nonce)
                    await self.nonces.resync()
                    continue
                else:
                    await self.nonces.release(nonce)
                    return TxOutcome(OrderStatus.REVERTED, tx_hash, nonce, f"node refused: {e}")
            except TRANSPORT_ERRORS as e:
                return await self._after_transport_error(tx_hash, nonce, e)
            log.info("sent tx %s nonce=%d to=%s gas=%d", tx_hash, nonce, tx["to"], gas)
            return await self._await_outcome(tx_hash, nonce, call)
        raise AssertionError("unreachable: the last attempt always returns")

    async def _after_transport_error(
        self, tx_hash: str, nonce: int, error: BaseException
    ) -> TxOutcome:
        """The send may or may not have arrived: ask the node for the hash before deciding."""
        try:
            await self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            await self.nonces.release(nonce)
            return TxOutcome(OrderStatus.DROPPED, tx_hash, nonce, f"not sent: {error!r}")
        except UNKNOWN_OUTCOME_ERRORS as e:
            await self.nonces.confirm(nonce)  # may be in the pool: never reuse it blindly
            return TxOutcome(OrderStatus.SENT, tx_hash, nonce, f"outcome unknown: {e!r}")
        return await self._await_outcome(tx_hash, nonce, None)

    async def _await_outcome(
        self, tx_hash: str, nonce: int, call: dict[str, Any] | None
    ) -> TxOutcome:
        try:
            receipt = await self.w3.eth.wait_for_transaction_receipt(
                tx_hash,  # type: ignore[arg-type]
                timeout=self.receipt_timeout,
                poll_latency=self.poll_interval,
            )
        except TimeExhausted:
            return await self._after_timeout(tx_hash, nonce)
        except UNKNOWN_OUTCOME_ERRORS as e:
            await self.nonces.confirm(nonce)
            return TxOutcome(OrderStatus.SENT, tx_hash, nonce, f"outcome unknown: {e!r}")
        await self.nonces.confirm(nonce)
        block = int(receipt["blockNumber"])
        if receipt["status"] == 1:
            status, reason = OrderStatus.FILLED, None
            log.info("tx %s mined in block %d", tx_hash, block)
        else:
            status, reason = OrderStatus.REVERTED, await self._replay_reason(call, block)
            log.info("tx %s reverted in block %d: %s", tx_hash, block, reason)
        return TxOutcome(
            status,
            tx_hash,
            nonce,
            reason,
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price=int(receipt.get("effectiveGasPrice", 0)),
            block_number=block,
            logs=tuple(dict(entry) for entry in receipt["logs"]),
        )

    async def _after_timeout(self, tx_hash: str, nonce: int) -> TxOutcome:
        """No receipt in time: if the node no longer knows the tx it was dropped."""
        try:
            await self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            await self.nonces.release(nonce)
            log.warning("tx %s (nonce %d) was dropped; nonce released", tx_hash, nonce)
            return TxOutcome(OrderStatus.DROPPED, tx_hash, nonce, "dropped from the node's pool")
        except UNKNOWN_OUTCOME_ERRORS as e:
            await self.nonces.confirm(nonce)
            return TxOutcome(OrderStatus.SENT, tx_hash, nonce, f"outcome unknown: {e!r}")
        await self.nonces.confirm(nonce)
        return TxOutcome(
            OrderStatus.SENT, tx_hash, nonce, f"still pending after {self.receipt_timeout}s"
        )

    async def _replay_reason(self, call: dict[str, Any] | None, block: int) -> str:
        """A mined revert has no message in its receipt: replay the call on that block's
        state to recover it (the state our transaction actually met, give or take the
        transactions after it in the block)."""
        if call is None:
            return "reverted on chain"
        try:
            await self.w3.eth.call(call, block_identifier=block)  # type: ignore[arg-type]
        except ContractLogicError as e:
            return revert_reason(e)
        except UNKNOWN_OUTCOME_ERRORS as e:
            return f"reverted on chain (reason unavailable: {e!r})"
        return "reverted on chain (replay succeeded: the state changed within the block)"
