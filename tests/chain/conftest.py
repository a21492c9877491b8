"""Fixtures for tests against a real anvil node.

- `anvil` (session): a running `AnvilNode` (rpc_url, chain_id, funded `accounts` with keys);
  installs anvil with `npm ci` first when hack/contracts/node_modules lacks it.
- `w3` (session): an `AsyncWeb3` connected to it.
- `dex_deployed` (session): the deployed `Dex` (tokens, two venues, funded traders).
- `dex` (function): the same `Dex`, with the chain snapshotted before the test and reverted
  after it, so every test starts from the freshly deployed state.
- `trader` / `other` (session): the funded trading account and a second one (the "market").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from web3 import AsyncWeb3

from module_runtime.chain import (
    PoolClient,
    RouterClient,
    Signer,
    TxSender,
    connect,
    disconnect,
    load_artifact,
)
from module_runtime.chain.router import NowClock

from .anvil import AnvilNode, DevAccount

MAX_UINT256 = 2**256 - 1
FEE_BPS = 30  # 0.3%, as Uniswap V2


@dataclass(frozen=True)
class Venue:
    """One DEX: a Pair and the Router that knows it (one pair per token pair per router)."""

    pair: str
    router: str


@dataclass(frozen=True)
class Dex:
    weth: str  # 18 decimals
    usdc: str  # 6 decimals
    venue_a: Venue  # 100 WETH : 300,000 USDC (3000 USDC/WETH)
    venue_b: Venue  # 100 WETH : 310,000 USDC (3100 USDC/WETH): the arbitrage counterpart
    deployer: DevAccount
    trader: DevAccount  # 1000 WETH, 3,000,000 USDC, nothing approved
    other: DevAccount  # same balances, both routers approved: moves prices in tests


def units(amount: str | int, decimals: int) -> int:
    return int(Decimal(amount).scaleb(decimals))


async def rpc(w3: AsyncWeb3[Any], method: str, *params: Any) -> Any:
    """A raw JSON-RPC call (anvil_*/evm_* methods web3 has no wrapper for)."""
    response = await w3.provider.make_request(method, list(params))
    if "error" in response:
        raise RuntimeError(f"{method}: {response['error']}")
    return response["result"]


async def transact(w3: AsyncWeb3[Any], fn: Any, sender: str) -> Any:
    """Send from an unlocked anvil account and wait for success (setup helper)."""
    tx_hash = await fn.transact({"from": sender})
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1, f"setup transaction failed: {receipt}"
    return receipt


async def deploy(w3: AsyncWeb3[Any], name: str, sender: str, *args: Any) -> str:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = await transact(w3, factory.constructor(*args), sender)
    return str(receipt["contractAddress"])


def erc20(w3: AsyncWeb3[Any], address: str) -> Any:
    return w3.eth.contract(
        address=w3.to_checksum_address(address), abi=load_artifact("TestToken").abi
    )


def router_contract(w3: AsyncWeb3[Any], address: str) -> Any:
    return w3.eth.contract(address=w3.to_checksum_address(address), abi=load_artifact("Router").abi)


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    node = AnvilNode.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
async def w3(anvil: AnvilNode) -> AsyncIterator[AsyncWeb3[Any]]:
    client = connect(anvil.rpc_url)
    try:
        yield client
    finally:
        await disconnect(client)


@pytest.fixture(scope="session")
def trader(anvil: AnvilNode) -> DevAccount:
    return anvil.accounts[1]


@pytest.fixture(scope="session")
def other(anvil: AnvilNode) -> DevAccount:
    return anvil.accounts[2]


async def _venue(
    w3: AsyncWeb3[Any], owner: str, weth: str, usdc: str, weth_amount: int, usdc_amount: int
) -> Venue:
    pair = await deploy(w3, "Pair", owner, weth, usdc, FEE_BPS)
    router = await deploy(w3, "Router", owner)
    rc = router_contract(w3, router)
    await transact(w3, rc.functions.registerPair(pair), owner)
    for token in (weth, usdc):
        await transact(w3, erc20(w3, token).functions.approve(router, MAX_UINT256), owner)
    deadline = 2**40
    add = rc.functions.addLiquidity(
        weth, usdc, weth_amount, usdc_amount, weth_amount, usdc_amount, owner, deadline
    )
    await transact(w3, add, owner)
    return Venue(pair=pair, router=router)


@pytest.fixture(scope="session")
async def dex_deployed(
    anvil: AnvilNode, w3: AsyncWeb3[Any], trader: DevAccount, other: DevAccount
) -> Dex:
    owner = anvil.accounts[0].address
    weth = await deploy(w3, "TestToken", owner, "Wrapped Ether", "WETH", 18)
    usdc = await deploy(w3, "TestToken", owner, "USD Coin", "USDC", 6)
    for account in (anvil.accounts[0], trader, other):
        await transact(w3, erc20(w3, weth).functions.mint(account.address, units(1000, 18)), owner)
        await transact(
            w3, erc20(w3, usdc).functions.mint(account.address, units(3_000_000, 6)), owner
        )
    venue_a = await _venue(w3, owner, weth, usdc, units(100, 18), units(300_000, 6))
    venue_b = await _venue(w3, owner, weth, usdc, units(100, 18), units(310_000, 6))
    for venue in (venue_a, venue_b):
        for token in (weth, usdc):
            approve = erc20(w3, token).functions.approve(venue.router, MAX_UINT256)
            await transact(w3, approve, other.address)
    return Dex(weth, usdc, venue_a, venue_b, anvil.accounts[0], trader, other)


@pytest.fixture
async def dex(w3: AsyncWeb3[Any], dex_deployed: Dex) -> AsyncIterator[Dex]:
    snapshot = await rpc(w3, "evm_snapshot")
    try:
        yield dex_deployed
    finally:
        # Leave nothing pending (a queued tx would replay into the next test), then rewind.
        await rpc(w3, "anvil_dropAllTransactions")
        await rpc(w3, "anvil_setAutomine", True)
        assert await rpc(w3, "evm_revert", snapshot), "evm_revert failed"


@dataclass
class Trading:
    """The client side for one account on one venue, as the runtime would build it."""

    sender: TxSender
    router: RouterClient
    pool: PoolClient


async def trading(
    w3: AsyncWeb3[Any],
    account: DevAccount,
    venue: Venue,
    *,
    clock: NowClock | None = None,
    **sender_options: Any,
) -> Trading:
    sender_options.setdefault("receipt_timeout", 10.0)
    sender = TxSender(w3, Signer(account.private_key), **sender_options)
    router = RouterClient(sender, venue.router, clock=clock)
    pool = await PoolClient.load(w3, venue.pair, base="WETH")
    return Trading(sender, router, pool)


async def balance(w3: AsyncWeb3[Any], token: str, holder: str) -> int:
    return int(await erc20(w3, token).functions.balanceOf(holder).call())


async def market_swap(
    w3: AsyncWeb3[Any], dex: Dex, venue: Venue, token_in: str, amount_in: int, **tx: Any
) -> Any:
    """`other` swaps through a router from its unlocked anvil account (moves the price).
    Returns the tx hash; waits for the receipt only when automine is on (`wait=True`)."""
    wait = tx.pop("wait", True)
    token_out = dex.usdc if token_in == dex.weth else dex.weth
    fn = router_contract(w3, venue.router).functions.swapExactTokensForTokens(
        amount_in, 0, [token_in, token_out], dex.other.address, 2**40
    )
    tx_hash = await fn.transact({"from": dex.other.address, **tx})
    if wait:
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1
    return tx_hash


async def wait_in_pool(w3: AsyncWeb3[Any], address: str, count: int) -> dict[int, Any]:
    """Wait (10 s at most) until `address` has `count` transactions in anvil's pool;
    returns nonce -> tx."""
    txs: dict[int, Any] = {}
    async with asyncio.timeout(10):
        while len(txs) < count:
            await asyncio.sleep(0.05)
            content = await rpc(w3, "txpool_content")
            txs = {
                int(nonce): tx
                for section in ("pending", "queued")
                for sender, by_nonce in content.get(section, {}).items()
                if sender.lower() == address.lower()
                for nonce, tx in by_nonce.items()
            }
    return txs
