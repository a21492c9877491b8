"""Making mints, wallets and pools on the LiteSVM stand-in with real transactions (tests and
the demo): SPL Token's InitializeMint2/InitializeAccount3/MintTo, the Associated Token
Account program, and the pool program's InitPool, all through module_runtime.solana."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from module_runtime.orders import OrderStatus
from module_runtime.solana import amm, spl
from module_runtime.solana.client import TxClient
from module_runtime.solana.rpc import SolanaRpc

ROOT = Path(__file__).resolve().parents[2]
PROGRAM_SO = ROOT / "contracts" / "solana" / "tradeplane_cpamm.so"
STANDIN = Path(__file__).with_name("litesvm_rpc_standin.py")
# a fixed address for the program in tests and the demo
PROGRAM_ID = Pubkey.from_bytes(hashlib.sha256(b"tradeplane-cpamm").digest())


async def ok(client: TxClient, *ixs: object, signers: tuple[Keypair, ...] = ()) -> str:
    outcome = await client.submit(list(ixs), signers=signers)  # type: ignore[arg-type]
    if outcome.status is not OrderStatus.FILLED:
        raise AssertionError(f"setup transaction failed: {outcome}")
    assert outcome.signature is not None
    return outcome.signature


async def airdrop(rpc: SolanaRpc, key: Pubkey, lamports: int) -> None:
    before = await rpc.balance(key)
    await rpc.airdrop(key, lamports)
    while await rpc.balance(key) < before + lamports:  # noqa: ASYNC110 (polls the chain)
        await asyncio.sleep(0.05)


async def create_mint(admin: TxClient, decimals: int) -> Pubkey:
    mint = Keypair()
    rent = await admin.rpc.rent_exempt(spl.MINT_LEN)
    await ok(
        admin,
        spl.create(admin.wallet, mint.pubkey(), rent, spl.MINT_LEN, spl.TOKEN_PROGRAM_ID),
        spl.initialize_mint(mint.pubkey(), decimals, admin.wallet),
        signers=(mint,),
    )
    return mint.pubkey()


async def fund(admin: TxClient, owner: Pubkey, mint: Pubkey, amount: int) -> Pubkey:
    """The owner's associated token account for `mint` (created), credited `amount`."""
    ata = spl.associated_address(owner, mint)
    ixs = [spl.create_associated_account(admin.wallet, owner, mint)]
    if amount:
        ixs.append(spl.mint_to(mint, ata, admin.wallet, amount))
    await ok(admin, *ixs)
    return ata


@dataclass(frozen=True)
class Pool:
    address: Pubkey
    mint_a: Pubkey
    mint_b: Pubkey
    vault_a: Pubkey
    vault_b: Pubkey


async def create_pool(
    admin: TxClient,
    mint_a: Pubkey,
    mint_b: Pubkey,
    reserve_a: int,
    reserve_b: int,
    fee_bps: int = 30,
) -> Pool:
    pool = Keypair()
    authority, bump = amm.find_authority(pool.pubkey(), PROGRAM_ID)
    vaults = [Keypair(), Keypair()]
    rent = await admin.rpc.rent_exempt(spl.TOKEN_ACCOUNT_LEN)
    for vault, mint, amount in zip(vaults, (mint_a, mint_b), (reserve_a, reserve_b), strict=True):
        await ok(
            admin,
            spl.create(
                admin.wallet, vault.pubkey(), rent, spl.TOKEN_ACCOUNT_LEN, spl.TOKEN_PROGRAM_ID
            ),
            spl.initialize_account(vault.pubkey(), mint, authority),
            spl.mint_to(mint, vault.pubkey(), admin.wallet, amount),
            signers=(vault,),
        )
    state_rent = await admin.rpc.rent_exempt(amm.STATE_LEN)
    await ok(
        admin,
        spl.create(admin.wallet, pool.pubkey(), state_rent, amm.STATE_LEN, PROGRAM_ID),
        amm.init_pool_ix(
            PROGRAM_ID,
            pool.pubkey(),
            vaults[0].pubkey(),
            vaults[1].pubkey(),
            authority,
            fee_bps,
            bump,
        ),
        signers=(pool,),
    )
    return Pool(pool.pubkey(), mint_a, mint_b, vaults[0].pubkey(), vaults[1].pubkey())


async def token_balance(rpc: SolanaRpc, account: Pubkey) -> int:
    data = await rpc.account(account)
    return 0 if data is None else spl.TokenAccount.parse(data.data).amount
