"""The constant-product AMM program (contracts/solana/cpamm.c): its accounts, instructions
and exact math.

`PoolAccount.parse` reads the program-owned pool state; `swap_out` is the program's
formula in Python integers (same rounding), so a quote from the pool's real account state
is, to the smallest unit, what the program pays at that state.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from .spl import TOKEN_PROGRAM_ID

MAGIC = b"TPCPAMM1"
STATE_LEN = 152
BPS = 10_000
MAX_AMOUNT_IN = (2**64 - 1) // BPS

# InstructionError::Custom codes of the program
ERRORS = {
    1: "slippage: output below min_out",
    2: "zero output",
    3: "invalid accounts",
    4: "invalid instruction data",
    5: "pool state (uninitialized or initialized)",
    6: "amount too large",
}
ERR_SLIPPAGE = 1


@dataclass(frozen=True, slots=True)
class PoolAccount:
    """The pool's state account."""

    address: Pubkey
    mint_a: Pubkey
    mint_b: Pubkey
    vault_a: Pubkey
    vault_b: Pubkey
    fee_bps: int
    bump: int

    @classmethod
    def parse(cls, address: Pubkey, data: bytes) -> PoolAccount:
        if len(data) < STATE_LEN or data[:8] != MAGIC:
            raise ValueError(f"{address} is not an initialized cpamm pool")
        keys = [Pubkey.from_bytes(data[8 + 32 * i : 40 + 32 * i]) for i in range(4)]
        fee, bump = struct.unpack_from("<QQ", data, 136)
        mint_a, mint_b, vault_a, vault_b = keys
        return cls(address, mint_a, mint_b, vault_a, vault_b, fee_bps=fee, bump=bump)

    def authority(self, program_id: Pubkey) -> Pubkey:
        return Pubkey.create_program_address([bytes(self.address), bytes([self.bump])], program_id)


def find_authority(pool: Pubkey, program_id: Pubkey) -> tuple[Pubkey, int]:
    """The vault authority PDA [pool, bump] and its bump."""
    for bump in range(255, -1, -1):
        try:
            return Pubkey.create_program_address([bytes(pool), bytes([bump])], program_id), bump
        except Exception:  # on the curve: try the next bump
            continue
    raise ValueError("no program address for this pool")


def swap_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """What the program pays for `amount_in` (0 if it would refuse the amount)."""
    if amount_in <= 0 or amount_in > MAX_AMOUNT_IN:
        return 0
    with_fee = amount_in * (BPS - fee_bps)
    return reserve_out * with_fee // (reserve_in * BPS + with_fee)


def init_pool_ix(
    program_id: Pubkey,
    pool: Pubkey,
    vault_a: Pubkey,
    vault_b: Pubkey,
    authority: Pubkey,
    fee_bps: int,
    bump: int,
) -> Instruction:
    return Instruction(
        program_id,
        bytes([0]) + struct.pack("<Q", fee_bps) + bytes([bump]),
        [
            AccountMeta(pool, False, True),
            AccountMeta(vault_a, False, False),
            AccountMeta(vault_b, False, False),
            AccountMeta(authority, False, False),
        ],
    )


def swap_ix(
    program_id: Pubkey,
    pool: PoolAccount,
    *,
    user: Pubkey,
    source: Pubkey,
    dest: Pubkey,
    a_to_b: bool,
    amount_in: int,
    min_out: int,
) -> Instruction:
    vault_in, vault_out = (pool.vault_a, pool.vault_b) if a_to_b else (pool.vault_b, pool.vault_a)
    return Instruction(
        program_id,
        bytes([1]) + struct.pack("<QQ", amount_in, min_out),
        [
            AccountMeta(pool.address, False, False),
            AccountMeta(pool.authority(program_id), False, False),
            AccountMeta(source, False, True),
            AccountMeta(dest, False, True),
            AccountMeta(vault_in, False, True),
            AccountMeta(vault_out, False, True),
            AccountMeta(user, True, False),
            AccountMeta(TOKEN_PROGRAM_ID, False, False),
        ],
    )
