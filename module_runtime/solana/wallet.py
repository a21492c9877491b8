"""The wallet keypair from TRADEPLANE_WALLET_KEY (the pod's `walletSecretRef`).

Accepted: the 64-byte secret key as base58 (Phantom/solders), or as a JSON array of 64
integers (a `solana-keygen` keypair file's content). Errors never echo the value.
"""

from __future__ import annotations

import json

from solders.keypair import Keypair


def keypair_from_secret(secret: str) -> Keypair:
    text = secret.strip()
    try:
        if text.startswith("["):
            values = json.loads(text)
            if not (isinstance(values, list) and len(values) == 64):
                raise ValueError
            return Keypair.from_bytes(bytes(int(v) for v in values))
        return Keypair.from_base58_string(text)
    except Exception:
        raise ValueError(
            "the wallet key (TRADEPLANE_WALLET_KEY) is not a Solana keypair: expected a "
            "base58 64-byte secret key or a JSON array of 64 integers"
        ) from None
