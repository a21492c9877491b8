"""An async client for the subset of Solana's JSON-RPC the runtime uses (aiohttp).

Transactions are built and signed with solders; this only moves JSON. Errors the node
answers are `SolanaRpcError` (code, message, data); a node that cannot be reached raises
what aiohttp raises (`CONNECTION_ERRORS`), and callers treat that as "outcome unknown".
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from dataclasses import dataclass
from typing import Any

import aiohttp
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.transaction import Transaction, VersionedTransaction

CONNECTION_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
COMMITMENT = {"commitment": "confirmed"}


class SolanaRpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data

    @property
    def blockhash_not_found(self) -> bool:
        return "Blockhash not found" in self.message


@dataclass(frozen=True, slots=True)
class AccountData:
    owner: Pubkey
    lamports: int
    data: bytes


class SolanaRpc:
    def __init__(self, url: str, *, timeout_seconds: float = 10.0) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"SolanaRpc({self.url!r})"

    async def call(self, method: str, *params: Any) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        async with self._session.post(self.url, json=body) as response:
            response.raise_for_status()
            reply = await response.json()
        if "error" in reply:
            error = reply["error"]
            raise SolanaRpcError(
                int(error.get("code", 0)), str(error.get("message")), error.get("data")
            )
        return reply.get("result")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- reads -------------------------------------------------------------------

    async def latest_blockhash(self) -> tuple[Hash, int]:
        """The latest blockhash and the last block height at which it is valid."""
        value = (await self.call("getLatestBlockhash", COMMITMENT))["value"]
        return Hash.from_string(value["blockhash"]), int(value["lastValidBlockHeight"])

    async def block_height(self) -> int:
        return int(await self.call("getBlockHeight", COMMITMENT))

    async def accounts(self, keys: list[Pubkey]) -> list[AccountData | None]:
        """Several accounts from one slot (one consistent snapshot)."""
        config = {"encoding": "base64", **COMMITMENT}
        value = (await self.call("getMultipleAccounts", [str(k) for k in keys], config))["value"]
        return [None if v is None else _account(v) for v in value]

    async def account(self, key: Pubkey) -> AccountData | None:
        return (await self.accounts([key]))[0]

    async def balance(self, key: Pubkey) -> int:
        return int((await self.call("getBalance", str(key), COMMITMENT))["value"])

    async def rent_exempt(self, size: int) -> int:
        return int(await self.call("getMinimumBalanceForRentExemption", size))

    async def signature_statuses(self, signatures: list[str]) -> list[dict[str, Any] | None]:
        config = {"searchTransactionHistory": True}
        return list((await self.call("getSignatureStatuses", signatures, config))["value"])

    async def transaction(self, signature: str) -> dict[str, Any] | None:
        config = {"encoding": "base64", "maxSupportedTransactionVersion": 0, **COMMITMENT}
        result = await self.call("getTransaction", signature, config)
        return None if result is None else dict(result)

    async def signatures_for(self, key: Pubkey, *, limit: int = 1000) -> list[dict[str, Any]]:
        """The address's transactions, newest first."""
        return list(await self.call("getSignaturesForAddress", str(key), {"limit": limit}))

    # ---- writes ------------------------------------------------------------------

    async def send(self, tx: Transaction | VersionedTransaction, *, preflight: bool) -> str:
        """Broadcast; the signature. Without preflight the node forwards the transaction even
        if it would fail, so a program's refusal lands on chain (fee paid) and is final."""
        raw = base64.b64encode(bytes(tx)).decode()
        config = {"encoding": "base64", "skipPreflight": not preflight, "maxRetries": 0}
        return str(await self.call("sendTransaction", raw, config))

    async def airdrop(self, key: Pubkey, lamports: int) -> str:
        return str(await self.call("requestAirdrop", str(key), lamports))


def _account(value: dict[str, Any]) -> AccountData:
    data, encoding = value["data"]
    if encoding != "base64":
        raise ValueError(f"unexpected account encoding {encoding!r}")
    return AccountData(
        Pubkey.from_string(value["owner"]), int(value["lamports"]), base64.b64decode(data)
    )
