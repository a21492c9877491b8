"""A real anvil node for tests: install (npm ci), start on a free loopback port, stop.

anvil comes from the npm package `@foundry-rs/anvil-linux-amd64`, pinned in
`hack/contracts/package-lock.json`, so a fresh clone needs nothing but node/npm:
`ensure_tooling()` runs `npm ci` when the binary is missing. CI or a developer can call it
up front with `python tests/chain/anvil.py install`.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

ROOT = Path(__file__).resolve().parents[2]
TOOLING_DIR = ROOT / "hack" / "contracts"
ANVIL_BIN = TOOLING_DIR / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
SOLC_PACKAGE = TOOLING_DIR / "node_modules" / "solc" / "package.json"

# anvil's (and hardhat's) well-known development mnemonic: these keys are public, never use
# them anywhere but a throwaway local chain.
MNEMONIC = "test test test test test test test test test test test junk"
CHAIN_ID = 31337
ACCOUNTS = 10
BALANCE_ETH = 10_000


def ensure_tooling() -> Path:
    """Install hack/contracts/node_modules (solc + anvil) with `npm ci` if it is incomplete.

    Returns the anvil binary. Raises RuntimeError when npm is not available.
    """
    if ANVIL_BIN.exists() and SOLC_PACKAGE.exists():
        return ANVIL_BIN
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install anvil and solc (hack/contracts)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=TOOLING_DIR,
        check=True,
        stdout=sys.stderr,  # keep pytest's captured stdout clean, still show progress
    )
    if not ANVIL_BIN.exists():
        raise RuntimeError(f"npm ci finished but {ANVIL_BIN} is missing (not linux x64?)")
    return ANVIL_BIN


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class DevAccount:
    """A funded anvil account. The key is a public development key, hidden from repr anyway
    so that a test printing accounts does not teach anyone to print keys."""

    address: ChecksumAddress
    private_key: str = field(repr=False)


def derive_accounts(count: int = ACCOUNTS) -> list[DevAccount]:
    # Imported here, so that `python3 tests/chain/anvil.py install` runs without the venv.
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    accounts = []
    for i in range(count):
        acct = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        accounts.append(DevAccount(address=acct.address, private_key="0x" + acct.key.hex()))
    return accounts


def rpc(url: str, method: str, params: list[object] | None = None, timeout: float = 2.0) -> object:
    """A blocking JSON-RPC call, for setup and teardown outside the event loop."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


@dataclass
class AnvilNode:
    """A running anvil process; `stop()` (or the context manager) ends it."""

    rpc_url: str
    port: int
    chain_id: int
    accounts: list[DevAccount]
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def private_keys(self) -> list[str]:
        return [a.private_key for a in self.accounts]

    @classmethod
    def start(cls, *, startup_timeout: float = 20.0, attempts: int = 3) -> AnvilNode:
        """Start anvil on a free 127.0.0.1 port and wait until JSON-RPC answers.

        The port is picked before anvil binds it, so another process can win the race; we
        then retry with a new port."""
        binary = ensure_tooling()
        last_error = ""
        for _ in range(attempts):
            port = free_port()
            # A file, not a pipe: a pipe nobody reads could fill up and stall anvil.
            with tempfile.TemporaryFile() as log:
                proc = subprocess.Popen(
                    [
                        str(binary),
                        "--host", "127.0.0.1",
                        "--port", str(port),
                        "--chain-id", str(CHAIN_ID),
                        "--mnemonic", MNEMONIC,
                        "--accounts", str(ACCOUNTS),
                        "--balance", str(BALANCE_ETH),
                        "--quiet",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )  # fmt: skip
                url = f"http://127.0.0.1:{port}"
                chain_id = _wait_for_rpc(url, proc, startup_timeout)
                if chain_id is not None:
                    return cls(url, port, chain_id, derive_accounts(), proc)
                _stop(proc)
                log.seek(0)
                last_error = log.read().decode(errors="replace")
        raise RuntimeError(f"anvil did not start: {last_error.strip()[-2000:]}")

    def stop(self) -> None:
        _stop(self.process)

    def __enter__(self) -> AnvilNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_for_rpc(url: str, proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Poll eth_chainId until it answers (-> chain id) or anvil exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return int(str(rpc(url, "eth_chainId")), 16)
        except (OSError, urllib.error.URLError, RuntimeError):
            time.sleep(0.05)
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """terminate, wait, then kill: anvil normally exits at once on SIGTERM."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


if __name__ == "__main__":
    if sys.argv[1:] == ["install"]:
        print(ensure_tooling())
    else:
        sys.exit("usage: python tests/chain/anvil.py install")
