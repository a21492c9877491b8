"""`python -m tests.kubelet_standin`: the kubelet stand-in as a process (see __init__)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import threading
from pathlib import Path

from tests.kubelet_standin.launcher import READY_FILE
from tests.kubelet_standin.standin import StandIn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.kubelet_standin",
        description="Test-only kubelet stand-in: runs the Pods bound to its Node as local "
        "processes on 127.0.0.N. No isolation; not a container runtime.",
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument(
        "--state-dir",
        required=True,
        type=Path,
        help="pod dirs (volumes, container.log) go to STATE_DIR/pods/",
    )
    parser.add_argument("--node-name", default="kubelet-standin")
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        dest="namespaces",
        help="only handle pods of this namespace (repeatable; default: all)",
    )
    parser.add_argument("--first-ip", type=int, default=2, help="first N of 127.0.0.N")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    standin = StandIn(
        args.kubeconfig,
        args.state_dir,
        node_name=args.node_name,
        namespaces=args.namespaces,
        first_ip=args.first_ip,
    )
    ready = args.state_dir / READY_FILE
    try:
        standin.start()
        ready.write_text(f"{os.getpid()}\n")
        while not stop.wait(1.0):
            pass
        logging.info("stopping: terminating all pod processes")
    finally:
        standin.stop()
        with contextlib.suppress(OSError):
            ready.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
