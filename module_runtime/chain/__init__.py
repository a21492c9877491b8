"""On-chain trading: contract artifacts, pool reads and exact quotes, nonces, signed swaps
through the Router, and `Web3Broker`, the on-chain `Broker`.

Everything talks to the node through `AsyncWeb3`, so no call blocks the runtime's loop.
"""

from .artifacts import Artifact, load_artifact
from .nonces import NonceManager
from .pool import PoolClient, Quote, Reserves, Token, get_amount_in, get_amount_out
from .router import RouterClient, SwapOutcome, transfers
from .rpc import connect, disconnect
from .tx import Signer, TxOutcome, TxSender, revert_reason
from .units import apply_slippage, from_units, to_units
from .web3_broker import Web3Broker

__all__ = [
    "Artifact",
    "NonceManager",
    "PoolClient",
    "Quote",
    "Reserves",
    "RouterClient",
    "Signer",
    "SwapOutcome",
    "Token",
    "TxOutcome",
    "TxSender",
    "Web3Broker",
    "apply_slippage",
    "connect",
    "disconnect",
    "from_units",
    "get_amount_in",
    "get_amount_out",
    "load_artifact",
    "revert_reason",
    "to_units",
    "transfers",
]
