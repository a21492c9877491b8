"""The signing key never shows up: not in logs (at DEBUG, web3's own included), reprs,
error messages or pickles."""

from __future__ import annotations

import logging
import pickle
from decimal import Decimal
from typing import Any

import pytest
from web3 import AsyncWeb3

from module_runtime.chain import Signer, Web3Broker
from module_runtime.orders import Order, OrderStatus, Side

from .conftest import Dex, trading

pytestmark = pytest.mark.anvil


def key_forms(key: str) -> list[str]:
    bare = key.removeprefix("0x").lower()
    return [bare, bare.upper(), bare[:32], bare[32:]]


def assert_no_key(text: str, key: str) -> None:
    for form in key_forms(key):
        assert form not in text, "private key material leaked"


async def test_key_not_in_logs_or_reprs(
    w3: AsyncWeb3[Any], dex: Dex, caplog: pytest.LogCaptureFixture
) -> None:
    key = dex.trader.private_key
    caplog.set_level(logging.DEBUG)  # root: catches module_runtime, web3, aiohttp, ...
    t = await trading(w3, dex.trader, dex.venue_a)
    broker = Web3Broker(t.router, [t.pool])

    filled = await broker.execute(Order("x", Side.BUY, "WETH", "USDC", Decimal(1), Decimal(3000)))
    refused = await broker.execute(
        Order("x", Side.SELL, "WETH", "USDC", Decimal(1), Decimal(3000), min_out=Decimal(10**6))
    )
    outcome = await t.router.swap_exact_in(t.pool, "USDC", 10**6)

    assert filled.status == OrderStatus.FILLED and refused.status == OrderStatus.REVERTED
    assert caplog.records, "expected DEBUG logs from the swap path"
    assert any("sent tx" in r.getMessage() for r in caplog.records)
    assert_no_key(caplog.text, key)
    for obj in (t.sender.signer, t.sender, t.sender.nonces, t.router, t.pool, broker, outcome):
        assert_no_key(repr(obj), key)
        assert_no_key(str(obj), key)
    assert repr(t.sender.signer) == f"Signer(address={dex.trader.address})"


def test_signer_refuses_pickling_and_does_not_echo_a_bad_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = "0x" + "ab" * 32
    signer = Signer(key)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(signer)
    assert not hasattr(signer, "__dict__")  # slots: no vars() view of the account

    bad = "0x" + "cd" * 31 + "zz"
    with pytest.raises(ValueError) as raised:
        Signer(bad)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert_no_key(str(raised.value) + repr(raised.value), bad)
    assert_no_key(caplog.text, key)
