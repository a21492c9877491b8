"""Swaps through the Router contract, with the protections a strategy needs.

A swap carries two guards the pool itself does not know: `amountOutMin` (from a slippage in
percent off a fresh quote, or given exactly) and a deadline (now + N seconds from an injected
clock, so tests and replays control time). The outcome reports what the chain did, read from
the receipt's Transfer logs rather than from our quote.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from web3 import AsyncWeb3

from ..orders import OrderStatus
from .artifacts import load_artifact
from .pool import PoolClient, Token
from .tx import TxOutcome, TxSender
from .units import apply_slippage, from_units

log = logging.getLogger(__name__)

MAX_UINT256 = 2**256 - 1
TRANSFER_TOPIC = AsyncWeb3.keccak(text="Transfer(address,address,uint256)").hex().removeprefix("0x")
NATIVE_DECIMALS = 18  # gas is paid in the chain's native coin (ETH): 18 decimals


class NowClock(Protocol):
    """What the router needs of `module_runtime.clock.Clock`: the current UTC time."""

    def now(self) -> datetime: ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SwapOutcome:
    """One swap's result. Amounts are smallest units; `*_decimal` properties convert.

    amount_in/amount_out are what actually moved (Transfer logs), zero unless FILLED.
    fee_wei is the swap transaction's network fee in native coin (a mined revert pays it
    too); approval_fee_wei is the fee of the token approval this swap needed first, if any.
    """

    status: OrderStatus
    token_in: Token
    token_out: Token
    min_out: int
    quoted_out: int | None = None
    amount_in: int = 0
    amount_out: int = 0
    tx_hash: str | None = None
    nonce: int | None = None
    reason: str | None = None
    gas_used: int = 0
    fee_wei: int = 0
    approval_fee_wei: int = 0
    block_number: int | None = None

    @property
    def amount_in_decimal(self) -> Decimal:
        return self.token_in.from_units(self.amount_in)

    @property
    def amount_out_decimal(self) -> Decimal:
        return self.token_out.from_units(self.amount_out)

    @property
    def total_fee_wei(self) -> int:
        return self.fee_wei + self.approval_fee_wei

    @property
    def fee_native(self) -> Decimal:
        """All network fees this swap cost (approval included), in native coin (ETH)."""
        return from_units(self.total_fee_wei, NATIVE_DECIMALS)


def transfers(logs: tuple[dict[str, Any], ...], token: str) -> list[tuple[str, str, int]]:
    """(from, to, value) of every ERC-20 Transfer event emitted by `token`, lower-case."""
    found = []
    for entry in logs:
        topics = [_hex(t) for t in entry.get("topics", [])]
        if (
            len(topics) == 3
            and topics[0] == TRANSFER_TOPIC
            and str(entry["address"]).lower() == token.lower()
        ):
            sender = "0x" + topics[1][-40:]
            receiver = "0x" + topics[2][-40:]
            found.append((sender, receiver, int(_hex(entry["data"]) or "0", 16)))
    return found


def _hex(value: Any) -> str:
    """Topics/data may be HexBytes, bytes or str depending on the provider: normalize."""
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value).lower().removeprefix("0x")


class RouterClient:
    """Builds, signs and sends Router calls from one account (through its `TxSender`)."""

    def __init__(
        self,
        sender: TxSender,
        router_address: str,
        *,
        clock: NowClock | None = None,
        deadline_seconds: int = 120,
        default_slippage_percent: Decimal = Decimal("0.5"),
    ) -> None:
        self.sender = sender
        self.w3 = sender.w3
        self.address = self.w3.to_checksum_address(router_address)
        self.contract = self.w3.eth.contract(address=self.address, abi=load_artifact("Router").abi)
        self.clock = clock or WallClock()
        self.deadline_seconds = deadline_seconds
        self.default_slippage_percent = default_slippage_percent
        self._unlimited: set[str] = set()  # tokens already approved for MAX_UINT256

    def __repr__(self) -> str:
        return f"RouterClient({self.address}, sender={self.sender!r})"

    def deadline(self) -> int:
        """Unix time after which the router refuses the swap (compared to block.timestamp)."""
        return int(self.clock.now().timestamp()) + self.deadline_seconds

    async def ensure_allowance(self, token: Token, amount: int) -> TxOutcome | None:
        """Approve the router for `token` (unlimited, once) unless the allowance covers
        `amount`. Returns the approval's outcome, or None when none was needed."""
        if token.address in self._unlimited:
            return None
        erc20 = self.w3.eth.contract(address=token.address, abi=load_artifact("TestToken").abi)
        allowance = int(await erc20.functions.allowance(self.sender.address, self.address).call())
        if allowance >= amount:
            if allowance == MAX_UINT256:
                self._unlimited.add(token.address)
            return None
        data = erc20.encode_abi("approve", args=[self.address, MAX_UINT256])
        outcome = await self.sender.send(token.address, data)
        if outcome.status == OrderStatus.FILLED:
            self._unlimited.add(token.address)
        return outcome

    async def swap_exact_in(
        self,
        pool: PoolClient,
        token_in: str | Token,
        amount_in: int,
        *,
        min_out: int | None = None,
        slippage_percent: Decimal | None = None,
        to: str | None = None,
    ) -> SwapOutcome:
        """Sell exactly `amount_in` units of `token_in` for the pool's other token.

        `min_out` (units) is used as given; otherwise it is the current quote less
        `slippage_percent` (default: the client's), rounded down. The router reverts when the
        output would be below it or the deadline has passed; the outcome then says why.
        """
        tin = pool.token(token_in)
        tout = pool.other(tin)
        quoted: int | None = None
        if min_out is None:
            quoted = (await pool.quote_exact_in(tin, amount_in)).amount_out
            slippage = (
                self.default_slippage_percent if slippage_percent is None else slippage_percent
            )
            min_out = apply_slippage(quoted, slippage)
        recipient = self.w3.to_checksum_address(to or self.sender.address)
        result = SwapOutcome(OrderStatus.PENDING, tin, tout, min_out, quoted)

        approval = await self.ensure_allowance(tin, amount_in)
        if approval is not None:
            result = replace(result, approval_fee_wei=approval.fee_wei)
            if approval.status != OrderStatus.FILLED:
                return _replace(
                    result, approval, fee_wei=0, reason=f"approval failed: {approval.reason}"
                )

        data = self.contract.encode_abi(
            "swapExactTokensForTokens",
            args=[amount_in, min_out, [tin.address, tout.address], recipient, self.deadline()],
        )
        outcome = await self.sender.send(self.address, data)
        if outcome.status != OrderStatus.FILLED:
            return _replace(result, outcome)
        me, pair, dest = self.sender.address.lower(), pool.address.lower(), recipient.lower()
        paid = sum(v for s, r, v in transfers(outcome.logs, tin.address) if (s, r) == (me, pair))
        received = sum(
            v for s, r, v in transfers(outcome.logs, tout.address) if (s, r) == (pair, dest)
        )
        return _replace(result, outcome, amount_in=paid, amount_out=received)


def _replace(result: SwapOutcome, outcome: TxOutcome, **changes: Any) -> SwapOutcome:
    fields: dict[str, Any] = {
        "status": outcome.status,
        "tx_hash": outcome.tx_hash,
        "nonce": outcome.nonce,
        "reason": outcome.reason,
        "gas_used": outcome.gas_used,
        "fee_wei": outcome.fee_wei,
        "block_number": outcome.block_number,
    }
    fields.update(changes)
    return replace(result, **fields)
