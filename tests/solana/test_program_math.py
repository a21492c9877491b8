"""The pool program's integer math against the client's (`amm.swap_out`), on the real VM
in-process (solders' LiteSVM, no RPC): random and extreme reserves and amounts, up to the
u64 limits where the program's hand-written 128-bit arithmetic matters."""

from __future__ import annotations

import random

from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from module_runtime.solana import amm, spl

from .pools import PROGRAM_ID, PROGRAM_SO

U64 = 2**64 - 1


class Vm:
    def __init__(self) -> None:
        self.svm = LiteSVM().with_lamports(10**18)
        self.svm.add_program_from_file(PROGRAM_ID, str(PROGRAM_SO))
        self.payer = Keypair()
        assert not hasattr(self.svm.airdrop(self.payer.pubkey(), 10**12), "err")

    def send(self, *ixs: object, signers: tuple[Keypair, ...] = ()) -> object:
        self.svm.expire_blockhash()
        tx = Transaction(
            [self.payer, *signers],
            Message(list(ixs), self.payer.pubkey()),  # type: ignore[arg-type]
            self.svm.latest_blockhash(),
        )
        return self.svm.send_transaction(tx)

    def ok(self, *ixs: object, signers: tuple[Keypair, ...] = ()) -> None:
        result = self.send(*ixs, signers=signers)
        assert not hasattr(result, "err"), result

    def account(self, owner: Pubkey, mint: Keypair, amount: int) -> Keypair:
        account = Keypair()
        rent = self.svm.minimum_balance_for_rent_exemption(spl.TOKEN_ACCOUNT_LEN)
        ixs: list[object] = [
            spl.create(self.payer.pubkey(), account.pubkey(), rent, spl.TOKEN_ACCOUNT_LEN,
                       spl.TOKEN_PROGRAM_ID),
            spl.initialize_account(account.pubkey(), mint.pubkey(), owner),
        ]  # fmt: skip
        if amount:
            ixs.append(spl.mint_to(mint.pubkey(), account.pubkey(), self.payer.pubkey(), amount))
        self.ok(*ixs, signers=(account,))
        return account

    def balance(self, account: Keypair) -> int:
        data = self.svm.get_account(account.pubkey())
        assert data is not None
        return spl.TokenAccount.parse(bytes(data.data)).amount


def swap_once(reserve_in: int, reserve_out: int, amount_in: int, fee_bps: int) -> int | None:
    """What the program pays on a fresh pool, or None if it refused."""
    vm = Vm()
    rent = vm.svm.minimum_balance_for_rent_exemption(spl.MINT_LEN)
    mints = [Keypair(), Keypair()]
    for mint in mints:
        vm.ok(
            spl.create(vm.payer.pubkey(), mint.pubkey(), rent, spl.MINT_LEN, spl.TOKEN_PROGRAM_ID),
            spl.initialize_mint(mint.pubkey(), 0, vm.payer.pubkey()),
            signers=(mint,),
        )
    pool = Keypair()
    authority, bump = amm.find_authority(pool.pubkey(), PROGRAM_ID)
    vault_in = vm.account(authority, mints[0], reserve_in)
    vault_out = vm.account(authority, mints[1], reserve_out)
    state_rent = vm.svm.minimum_balance_for_rent_exemption(amm.STATE_LEN)
    vm.ok(
        spl.create(vm.payer.pubkey(), pool.pubkey(), state_rent, amm.STATE_LEN, PROGRAM_ID),
        amm.init_pool_ix(
            PROGRAM_ID, pool.pubkey(), vault_in.pubkey(), vault_out.pubkey(), authority, fee_bps,
            bump,
        ),
        signers=(pool,),
    )  # fmt: skip
    data = vm.svm.get_account(pool.pubkey())
    assert data is not None
    state = amm.PoolAccount.parse(pool.pubkey(), bytes(data.data))
    user = Keypair()
    vm.svm.airdrop(user.pubkey(), 10**9)
    source = vm.account(user.pubkey(), mints[0], amount_in)
    dest = vm.account(user.pubkey(), mints[1], 0)
    ix = amm.swap_ix(
        PROGRAM_ID, state, user=user.pubkey(), source=source.pubkey(), dest=dest.pubkey(),
        a_to_b=True, amount_in=amount_in, min_out=0,
    )  # fmt: skip
    result = vm.send(ix, signers=(user,))
    if hasattr(result, "err"):
        print(result.err(), result.meta().logs())  # shown when an assertion fails
        return None
    paid = amount_in - vm.balance(source)
    assert paid == amount_in
    return vm.balance(dest)


def test_program_pays_the_client_formula_to_the_unit() -> None:
    rng = random.Random(9)
    cases = [
        (10**12, 10**12, 10**6, 30),
        (1, U64, 1, 0),  # a huge output side: 128-bit numerator
        (U64 - amm.MAX_AMOUNT_IN, U64, amm.MAX_AMOUNT_IN, 30),  # the largest amount it takes
        (U64 - amm.MAX_AMOUNT_IN, 1, amm.MAX_AMOUNT_IN, 9_999),
        (3, 7, 2, 1),
    ]
    cases += [
        (rng.randint(1, U64), rng.randint(1, U64), rng.randint(1, amm.MAX_AMOUNT_IN),
         rng.randint(0, 9_999))
        for _ in range(20)
    ]  # fmt: skip
    for reserve_in, reserve_out, amount_in, fee in cases:
        reserve_in = min(reserve_in, U64 - amount_in)  # the in-side mint's supply fits u64
        expected = amm.swap_out(amount_in, reserve_in, reserve_out, fee)
        got = swap_once(reserve_in, reserve_out, amount_in, fee)
        # the program refuses a zero output (Custom(2)) rather than pay nothing
        assert got == (expected or None), (reserve_in, reserve_out, amount_in, fee)


def test_program_refuses_an_amount_beyond_its_range() -> None:
    assert swap_once(10**12, 10**12, amm.MAX_AMOUNT_IN + 1, 30) is None
    assert amm.swap_out(amm.MAX_AMOUNT_IN + 1, 10**12, 10**12, 30) == 0
