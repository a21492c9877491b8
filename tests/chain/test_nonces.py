"""NonceManager with real concurrency, a dropped transaction and a second sender."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from web3 import AsyncWeb3

from module_runtime.chain import NonceManager, Signer, TxOutcome, TxSender
from module_runtime.orders import OrderStatus

from .conftest import Dex, erc20, rpc, units, wait_in_pool

pytestmark = pytest.mark.anvil


def transfer_data(w3: AsyncWeb3[Any], dex: Dex, amount: int) -> str:
    return str(erc20(w3, dex.usdc).encode_abi("transfer", args=[dex.other.address, amount]))


async def test_concurrent_sends_get_distinct_consecutive_nonces(
    w3: AsyncWeb3[Any], dex: Dex
) -> None:
    sender = TxSender(w3, Signer(dex.trader.private_key), receipt_timeout=30)
    start = await w3.eth.get_transaction_count(dex.trader.address, "pending")

    outcomes = await asyncio.gather(
        *(sender.send(dex.usdc, transfer_data(w3, dex, i + 1)) for i in range(20))
    )

    assert [o.status for o in outcomes] == [OrderStatus.FILLED] * 20
    assert sorted(o.nonce for o in outcomes if o.nonce is not None) == list(
        range(start, start + 20)
    )
    assert await w3.eth.get_transaction_count(dex.trader.address, "latest") == start + 20
    assert not sender.nonces.held and not sender.nonces.gaps


async def test_dropped_transaction_is_recovered(w3: AsyncWeb3[Any], dex: Dex) -> None:
    """Two sends wait in the pool; the first is dropped (anvil drops its dependant too).
    Both report DROPPED and give their nonces back; the next sends refill them and mine."""
    sender = TxSender(w3, Signer(dex.trader.private_key), receipt_timeout=1.5)
    start = await w3.eth.get_transaction_count(dex.trader.address, "pending")
    await rpc(w3, "anvil_setAutomine", False)

    first = asyncio.create_task(sender.send(dex.usdc, transfer_data(w3, dex, 1)))
    in_pool = await wait_in_pool(w3, dex.trader.address, 1)
    second = asyncio.create_task(sender.send(dex.usdc, transfer_data(w3, dex, 2)))
    await wait_in_pool(w3, dex.trader.address, 2)
    await rpc(w3, "anvil_dropTransaction", in_pool[start]["hash"])
    await rpc(w3, "evm_mine")
    dropped: list[TxOutcome] = [await first, await second]

    assert [o.status for o in dropped] == [OrderStatus.DROPPED] * 2
    assert [o.nonce for o in dropped] == [start, start + 1]
    assert await w3.eth.get_transaction_count(dex.trader.address, "latest") == start
    assert not sender.nonces.held

    await rpc(w3, "anvil_setAutomine", True)
    again = await asyncio.gather(
        sender.send(dex.usdc, transfer_data(w3, dex, 3)),
        sender.send(dex.usdc, transfer_data(w3, dex, 4)),
    )
    assert [o.status for o in again] == [OrderStatus.FILLED] * 2
    assert sorted(o.nonce for o in again if o.nonce is not None) == [start, start + 1]
    assert await w3.eth.get_transaction_count(dex.trader.address, "latest") == start + 2


async def test_resync_refills_a_gap_left_by_a_lost_transaction(
    w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """A nonce handed out whose transaction was lost without its sender noticing (a crash
    between next() and confirm/release) is found by resync and handed out again."""
    nonces = NonceManager(w3, dex.trader.address)
    start = await nonces.next()
    lost = await nonces.next()
    await nonces.confirm(start)
    await nonces.confirm(lost)  # we thought it was sent; the node never saw either
    assert await nonces.resync(forget_sent=True) == []  # gaps at the top just lower the counter
    assert await nonces.next() == start

    held = await nonces.next()
    gap = await nonces.next()
    top = await nonces.next()
    await nonces.release(gap)
    assert nonces.gaps == {gap}
    assert await nonces.next() == gap  # the lowest gap goes first
    await nonces.release(top)  # the top one just lowers the counter
    assert not nonces.gaps
    assert nonces.held == {start, held, gap}


async def test_another_sender_with_the_same_key_is_detected(w3: AsyncWeb3[Any], dex: Dex) -> None:
    """Another process spends our next nonce: the node refuses ours as too low, the sender
    resyncs from the chain and succeeds with the next free nonce."""
    ours = TxSender(w3, Signer(dex.trader.private_key))
    theirs = TxSender(w3, Signer(dex.trader.private_key))
    first = await ours.send(dex.usdc, transfer_data(w3, dex, 1))
    stolen = await theirs.send(dex.usdc, transfer_data(w3, dex, 2))
    assert first.nonce is not None and stolen.nonce == first.nonce + 1

    outcome = await ours.send(dex.usdc, transfer_data(w3, dex, 3))

    assert outcome.status == OrderStatus.FILLED, outcome.reason
    assert outcome.nonce == first.nonce + 2
    assert await w3.eth.get_transaction_count(dex.trader.address) == first.nonce + 3


async def test_node_refusal_is_reported_and_releases_the_nonce(
    w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """A transaction the node refuses outright (fee cap below the base fee) costs nothing."""
    sender = TxSender(w3, Signer(dex.trader.private_key))
    data = transfer_data(w3, dex, units(1, 6))
    sender.fees = _too_cheap  # type: ignore[method-assign]
    outcome = await sender.send(dex.usdc, data)
    assert outcome.status == OrderStatus.REVERTED
    assert "node refused" in (outcome.reason or "")
    assert not sender.nonces.held


async def _too_cheap() -> dict[str, int]:
    return {"maxFeePerGas": 1, "maxPriorityFeePerGas": 1, "type": 2}
