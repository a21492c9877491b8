"""SPL Token and System program instructions and account layouts (the subset we use).

Built by hand from the programs' documented wire formats, with solders types, so the client
needs no more than `solders`: InitializeMint2, InitializeAccount3, MintTo and Transfer;
token accounts (165 bytes: mint, owner, amount at 64) and mints (82 bytes, decimals at 44).
Amounts are integers in the token's smallest unit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account

TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
MINT_LEN = 82
TOKEN_ACCOUNT_LEN = 165


@dataclass(frozen=True, slots=True)
class TokenAccount:
    mint: Pubkey
    owner: Pubkey
    amount: int

    @classmethod
    def parse(cls, data: bytes) -> TokenAccount:
        if len(data) != TOKEN_ACCOUNT_LEN:
            raise ValueError(f"not an SPL token account: {len(data)} bytes")
        (amount,) = struct.unpack_from("<Q", data, 64)
        return cls(Pubkey.from_bytes(data[0:32]), Pubkey.from_bytes(data[32:64]), amount)


def mint_decimals(data: bytes) -> int:
    if len(data) != MINT_LEN:
        raise ValueError(f"not an SPL mint: {len(data)} bytes")
    return data[44]


def create(payer: Pubkey, new: Pubkey, lamports: int, space: int, owner: Pubkey) -> Instruction:
    return create_account(
        CreateAccountParams(
            from_pubkey=payer, to_pubkey=new, lamports=lamports, space=space, owner=owner
        )
    )


def initialize_mint(mint: Pubkey, decimals: int, authority: Pubkey) -> Instruction:
    data = bytes([20, decimals]) + bytes(authority) + b"\0"  # no freeze authority
    return Instruction(TOKEN_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def initialize_account(account: Pubkey, mint: Pubkey, owner: Pubkey) -> Instruction:
    return Instruction(
        TOKEN_PROGRAM_ID,
        bytes([18]) + bytes(owner),
        [AccountMeta(account, False, True), AccountMeta(mint, False, False)],
    )


def mint_to(mint: Pubkey, to: Pubkey, authority: Pubkey, amount: int) -> Instruction:
    return Instruction(
        TOKEN_PROGRAM_ID,
        bytes([7]) + struct.pack("<Q", amount),
        [
            AccountMeta(mint, False, True),
            AccountMeta(to, False, True),
            AccountMeta(authority, True, False),
        ],
    )


def transfer(source: Pubkey, dest: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    return Instruction(
        TOKEN_PROGRAM_ID,
        bytes([3]) + struct.pack("<Q", amount),
        [
            AccountMeta(source, False, True),
            AccountMeta(dest, False, True),
            AccountMeta(owner, True, False),
        ],
    )


ASSOCIATED_TOKEN_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")


def create_associated_account(payer: Pubkey, owner: Pubkey, mint: Pubkey) -> Instruction:
    """The Associated Token Account program's CreateIdempotent (a no-op if it exists)."""
    from solders.token.associated import get_associated_token_address

    return Instruction(
        ASSOCIATED_TOKEN_PROGRAM_ID,
        bytes([1]),
        [
            AccountMeta(payer, True, True),
            AccountMeta(get_associated_token_address(owner, mint), False, True),
            AccountMeta(owner, False, False),
            AccountMeta(mint, False, False),
            AccountMeta(SYSTEM_PROGRAM_ID, False, False),
            AccountMeta(TOKEN_PROGRAM_ID, False, False),
        ],
    )


def associated_address(owner: Pubkey, mint: Pubkey) -> Pubkey:
    from solders.token.associated import get_associated_token_address

    return get_associated_token_address(owner, mint)
