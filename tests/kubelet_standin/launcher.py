"""Run the stand-in as a subprocess from tests: `start_standin` / `stop_standin`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.kubelet_standin.kube import core_api, raw

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_FILE = "standin.ready"  # written by __main__ once the Node is registered
LOG_FILE = "standin.log"


def start_standin(
    kubeconfig: str | Path,
    state_dir: str | Path,
    *,
    node_name: str = "kubelet-standin",
    namespaces: Sequence[str] = (),
    first_ip: int = 2,
    timeout: float = 30.0,
) -> subprocess.Popen[bytes]:
    """Launch `python -m tests.kubelet_standin` (log: STATE_DIR/standin.log) and return
    once its Node exists. Stop it with `stop_standin`."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / READY_FILE).unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "tests.kubelet_standin",
        "--kubeconfig",
        str(kubeconfig),
        "--state-dir",
        str(state),
        "--node-name",
        node_name,
        "--first-ip",
        str(first_ip),
    ]
    for ns in namespaces:
        argv += ["--namespace", ns]
    # `-m` from the repo root makes `tests` importable. Not via PYTHONPATH: the repo's
    # `operator/` dir would shadow the standard library's `operator` at startup.
    with open(state / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + timeout
    while not (state / READY_FILE).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_standin(proc)
            tail = (state / LOG_FILE).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"kubelet stand-in did not start (exit {proc.returncode}):\n{tail}")
        time.sleep(0.1)
    raw(core_api(str(kubeconfig)).read_node, node_name)  # the Node exists
    return proc


def stop_standin(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM (the stand-in then terminates its processes), SIGKILL after `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
