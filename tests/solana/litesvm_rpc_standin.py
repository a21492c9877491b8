"""A Solana JSON-RPC stand-in over LiteSVM (solders.litesvm): for tests and the demo only.

LiteSVM is the real Solana runtime (SVM, loaders, the SPL Token, Associated Token Account
and Memo programs it ships) but runs in-process, with no RPC. Runtime pods and test
processes reach it through this small HTTP server, which speaks the subset of Solana's
JSON-RPC that module_runtime.solana.rpc uses, in the same shapes as a validator:
getLatestBlockhash, getBlockHeight, getSlot, sendTransaction (base64; with or without
preflight), simulateTransaction, getSignatureStatuses, getTransaction (json meta with
pre/post balances and token balances; transaction as base64), getSignaturesForAddress,
getAccountInfo, getMultipleAccounts, getBalance, getMinimumBalanceForRentExemption,
requestAirdrop, getHealth, getVersion.

What is the stand-in's, not the VM's: slots. A background thread makes a new slot every
`--slot-ms` (block height == slot) with a new blockhash, valid for 150 blocks like a
validator's; sendTransaction refuses an unknown or expired blockhash ("Blockhash not
found"), so clients must handle recent blockhashes as on a real cluster. As on a cluster,
sendTransaction only queues: the transaction executes when the current slot ends (its
blockhash checked again then), so there is a window between send and confirmation.
Every landed transaction (success or failure, the fee charged either way) is "finalized"
at once. Two methods are the stand-in's own, for tests that must act in that window:
`standinPendingSignatures` (queued, not yet executed) and `standinHold` (true: queued
transactions wait, slots go on; false: they execute at the end of the slot).

    python tests/solana/litesvm_rpc_standin.py --port 8899 [--slot-ms 400]
        [--program ID=path.so ...] [--ready-file PATH]

Never shipped: it is under tests/ and is not part of the package.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
VALID_BLOCKS = 150
LAMPORTS_AIRDROP_POOL = 10**18


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def error_json(err: Any) -> Any:
    """A TransactionError as the RPC writes it, e.g. {"InstructionError": [0, {"Custom": 1}]}."""
    if hasattr(err, "index") and hasattr(err, "err"):  # TransactionErrorInstructionError
        inner = err.err
        if hasattr(inner, "code"):
            detail: Any = {"Custom": int(inner.code)}
        else:
            detail = _enum_name(inner)
        return {"InstructionError": [int(err.index), detail]}
    return _enum_name(err)


def _enum_name(value: Any) -> str:
    """A fieldless error's RPC name (e.g. InvalidArgument)."""
    return str(value).rsplit(".", 1)[-1]


class Chain:
    """LiteSVM plus the stand-in's slots, blockhashes and transaction history."""

    def __init__(self, programs: list[tuple[Pubkey, Path]], slot_seconds: float) -> None:
        self.svm = LiteSVM().with_blockhash_check(False).with_lamports(LAMPORTS_AIRDROP_POOL)
        for program_id, path in programs:
            self.svm.add_program_from_file(program_id, str(path))
        self.lock = threading.Lock()
        self.slot = 1
        self.svm.warp_to_slot(self.slot)
        self.valid: dict[str, int] = {}  # blockhash -> last valid block height
        self.latest = str(self.svm.latest_blockhash())
        self.valid[self.latest] = self.slot + VALID_BLOCKS
        self.history: dict[str, dict[str, Any]] = {}
        self.queue: dict[str, VersionedTransaction] = {}
        self.hold = False
        self.by_address: dict[str, list[str]] = {}
        self.slot_seconds = slot_seconds
        self.started = time.time()

    # ---- slots -------------------------------------------------------------------

    def run_slots(self, stop: threading.Event) -> None:
        while not stop.wait(self.slot_seconds):
            with self.lock:
                if not self.hold:
                    queued, self.queue = self.queue, {}
                    for tx in queued.values():
                        self._execute(tx)
                self.slot += 1
                self.svm.warp_to_slot(self.slot)
                self.svm.expire_blockhash()
                self.latest = str(self.svm.latest_blockhash())
                self.valid[self.latest] = self.slot + VALID_BLOCKS
                for old in [h for h, last in self.valid.items() if last < self.slot]:
                    del self.valid[old]

    def block_time(self) -> int:
        return int(time.time())

    # ---- methods -----------------------------------------------------------------

    def context(self) -> dict[str, Any]:
        return {"slot": self.slot, "apiVersion": "2.2.0"}

    def getHealth(self) -> str:
        return "ok"

    def getVersion(self) -> dict[str, Any]:
        return {"solana-core": "litesvm-standin (solders 0.29.0)", "feature-set": 0}

    def getSlot(self, config: Any = None) -> int:
        return self.slot

    def getBlockHeight(self, config: Any = None) -> int:
        return self.slot

    def getLatestBlockhash(self, config: Any = None) -> dict[str, Any]:
        return {
            "context": self.context(),
            "value": {"blockhash": self.latest, "lastValidBlockHeight": self.valid[self.latest]},
        }

    def isBlockhashValid(self, blockhash: str, config: Any = None) -> dict[str, Any]:
        last = self.valid.get(blockhash)
        return {"context": self.context(), "value": last is not None and last >= self.slot}

    def getMinimumBalanceForRentExemption(self, size: int, config: Any = None) -> int:
        return int(self.svm.minimum_balance_for_rent_exemption(int(size)))

    def getBalance(self, address: str, config: Any = None) -> dict[str, Any]:
        account = self.svm.get_account(Pubkey.from_string(address))
        return {"context": self.context(), "value": 0 if account is None else account.lamports}

    def _account(self, address: str) -> dict[str, Any] | None:
        account = self.svm.get_account(Pubkey.from_string(address))
        if account is None or (account.lamports == 0 and not account.data):
            return None
        return {
            "data": [base64.b64encode(bytes(account.data)).decode(), "base64"],
            "executable": account.executable,
            "lamports": account.lamports,
            "owner": str(account.owner),
            "rentEpoch": 0,
            "space": len(account.data),
        }

    def getAccountInfo(self, address: str, config: Any = None) -> dict[str, Any]:
        return {"context": self.context(), "value": self._account(address)}

    def getMultipleAccounts(self, addresses: list[str], config: Any = None) -> dict[str, Any]:
        return {"context": self.context(), "value": [self._account(a) for a in addresses]}

    def requestAirdrop(self, address: str, lamports: int, config: Any = None) -> str:
        result = self.svm.airdrop(Pubkey.from_string(address), int(lamports))
        if hasattr(result, "err"):
            raise RpcError(-32603, f"airdrop failed: {result.err()}")
        signature = str(result.signature())
        self.history[signature] = {
            "slot": self.slot,
            "blockTime": self.block_time(),
            "transaction": None,
            "meta": {"err": None, "status": {"Ok": None}, "fee": 0, "logMessages": []},
        }
        return signature

    def _decode(self, raw: str, config: Any) -> VersionedTransaction:
        encoding = (config or {}).get("encoding", "base58")
        if encoding != "base64":
            raise RpcError(-32602, "only base64 encoded transactions are supported")
        return VersionedTransaction.from_bytes(base64.b64decode(raw))

    def simulateTransaction(self, raw: str, config: Any = None) -> dict[str, Any]:
        tx = self._decode(raw, config)
        result = self.svm.simulate_transaction(tx)
        if hasattr(result, "err"):
            meta = result.meta()
            value = {"err": error_json(result.err()), "logs": list(meta.logs())}
        else:
            value = {"err": None, "logs": list(result.meta().logs())}
        return {"context": self.context(), "value": value}

    def _token_balances(self, keys: list[Pubkey]) -> list[dict[str, Any]]:
        out = []
        for index, key in enumerate(keys):
            account = self.svm.get_account(key)
            if account is None or account.owner != TOKEN_PROGRAM or len(account.data) != 165:
                continue
            data = bytes(account.data)
            mint = Pubkey.from_bytes(data[0:32])
            mint_account = self.svm.get_account(mint)
            decimals = bytes(mint_account.data)[44] if mint_account is not None else 0
            amount = int.from_bytes(data[64:72], "little")
            out.append(
                {
                    "accountIndex": index,
                    "mint": str(mint),
                    "owner": str(Pubkey.from_bytes(data[32:64])),
                    "programId": str(TOKEN_PROGRAM),
                    "uiTokenAmount": {"amount": str(amount), "decimals": decimals},
                }
            )
        return out

    def sendTransaction(self, raw: str, config: Any = None) -> str:
        config = config or {}
        tx = self._decode(raw, config)
        signature = str(tx.signatures[0])
        if signature in self.history or signature in self.queue:
            return signature  # already processed or queued: a resend is harmless
        if not self._blockhash_ok(tx):
            raise RpcError(-32002, "Transaction simulation failed: Blockhash not found")
        if not config.get("skipPreflight", False):
            simulated = self.svm.simulate_transaction(tx)
            if hasattr(simulated, "err"):
                raise RpcError(
                    -32002,
                    f"Transaction simulation failed: {error_json(simulated.err())}",
                    {"err": error_json(simulated.err()), "logs": list(simulated.meta().logs())},
                )
        self.queue[signature] = tx
        return signature

    def standinPendingSignatures(self) -> list[str]:
        return list(self.queue)

    def standinHold(self, hold: bool) -> bool:
        """Hold queued transactions (slots go on; nothing executes) or release them."""
        self.hold = bool(hold)
        return self.hold

    def _blockhash_ok(self, tx: VersionedTransaction) -> bool:
        last = self.valid.get(str(tx.message.recent_blockhash))
        return last is not None and last >= self.slot

    def _execute(self, tx: VersionedTransaction) -> None:
        """Land a queued transaction (or drop it: expired blockhash, fee not payable)."""
        signature = str(tx.signatures[0])
        if not self._blockhash_ok(tx):
            return
        keys = list(tx.message.account_keys)
        pre = [self.svm.get_balance(k) or 0 for k in keys]
        pre_tokens = self._token_balances(keys)
        result = self.svm.send_transaction(tx)
        post = [self.svm.get_balance(k) or 0 for k in keys]
        failed = hasattr(result, "err")
        meta = result.meta() if failed else result
        if failed and post[0] == pre[0]:  # not even the fee was charged: it did not land
            return
        err = error_json(result.err()) if failed else None
        self.history[signature] = {
            "slot": self.slot,
            "blockTime": self.block_time(),
            "transaction": [base64.b64encode(bytes(tx)).decode(), "base64"],
            "meta": {
                "err": err,
                "status": {"Err": err} if failed else {"Ok": None},
                "fee": pre[0] - post[0] if failed else int(meta.fee()),
                "preBalances": pre,
                "postBalances": post,
                "preTokenBalances": pre_tokens,
                "postTokenBalances": self._token_balances(keys),
                "logMessages": list(meta.logs()),
                "computeUnitsConsumed": int(meta.compute_units_consumed()),
            },
            "version": 0 if not hasattr(tx.message, "header") else "legacy",
        }
        for key in keys:
            self.by_address.setdefault(str(key), []).insert(0, signature)

    def getSignatureStatuses(self, signatures: list[str], config: Any = None) -> dict[str, Any]:
        value = []
        for signature in signatures:
            record = self.history.get(signature)
            if record is None:
                value.append(None)
                continue
            value.append(
                {
                    "slot": record["slot"],
                    "confirmations": None,
                    "err": record["meta"]["err"],
                    "status": record["meta"]["status"],
                    "confirmationStatus": "finalized",
                }
            )
        return {"context": self.context(), "value": value}

    def getTransaction(self, signature: str, config: Any = None) -> dict[str, Any] | None:
        record = self.history.get(signature)
        return None if record is None else dict(record)

    def getSignaturesForAddress(self, address: str, config: Any = None) -> list[dict[str, Any]]:
        limit = int((config or {}).get("limit", 1000))
        out = []
        for signature in self.by_address.get(address, [])[:limit]:
            record = self.history[signature]
            out.append(
                {
                    "signature": signature,
                    "slot": record["slot"],
                    "err": record["meta"]["err"],
                    "memo": None,
                    "blockTime": record["blockTime"],
                    "confirmationStatus": "finalized",
                }
            )
        return out

    def call(self, method: str, params: list[Any]) -> Any:
        if method.startswith("_") or method in ("call", "context", "run_slots", "block_time"):
            raise RpcError(-32601, f"Method not found: {method}")
        handler = getattr(self, method, None)
        if handler is None:
            raise RpcError(-32601, f"Method not found: {method}")
        with self.lock:
            return handler(*params)


def serve(chain: Chain, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                request = json.loads(body)
            except json.JSONDecodeError:
                self._reply(
                    {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {"code": -32700, "message": "Parse error"},
                    }
                )
                return
            requests = request if isinstance(request, list) else [request]
            replies = [self._one(r) for r in requests]
            self._reply(replies if isinstance(request, list) else replies[0])

        def _one(self, request: dict[str, Any]) -> dict[str, Any]:
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request.get("id")}
            try:
                reply["result"] = chain.call(
                    str(request.get("method")), list(request.get("params") or [])
                )
            except RpcError as error:
                reply["error"] = {"code": error.code, "message": error.message}
                if error.data is not None:
                    reply["error"]["data"] = error.data
            except Exception as error:  # a bad parameter: the RPC's invalid params
                reply["error"] = {"code": -32602, "message": f"Invalid params: {error}"}
            return reply

        def _reply(self, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument("--program", action="append", default=[], metavar="ID=PATH")
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args(argv)
    programs = []
    for item in args.program:
        program_id, _, path = item.partition("=")
        programs.append((Pubkey.from_string(program_id), Path(path)))
    chain = Chain(programs, args.slot_ms / 1000)
    server = serve(chain, args.host, args.port)
    stop = threading.Event()
    threading.Thread(target=chain.run_slots, args=(stop,), daemon=True).start()
    if args.ready_file:
        args.ready_file.write_text(f"http://{args.host}:{server.server_address[1]}\n")
    print(f"litesvm rpc stand-in on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
