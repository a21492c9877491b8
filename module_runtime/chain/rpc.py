"""Connecting to a node: one place that sets the HTTP timeout and closes the session."""

from __future__ import annotations

from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3


def connect(rpc_url: str, *, request_timeout: float = 10.0) -> AsyncWeb3[Any]:
    """An `AsyncWeb3` for `rpc_url`. Every request is bounded by `request_timeout`, so a hung
    node turns into an error instead of a stuck task. Close it with `disconnect(w3)`."""
    from aiohttp import ClientTimeout

    provider = AsyncHTTPProvider(
        rpc_url, request_kwargs={"timeout": ClientTimeout(total=request_timeout)}
    )
    return AsyncWeb3(provider)


async def disconnect(w3: AsyncWeb3[Any]) -> None:
    """Close the provider's HTTP session (aiohttp warns about unclosed sessions otherwise)."""
    await w3.provider.disconnect()
