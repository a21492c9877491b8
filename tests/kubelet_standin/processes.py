"""Starting and killing container processes, and the pidfiles that survive a crash.

Each process leads its own session/process group so that signals reach everything it
spawned. A pidfile (`pid starttime`) per pod dir lets a restarted stand-in kill the
process groups a crashed (SIGKILLed) predecessor left behind; the start time guards
against pid reuse.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

PIDFILE = "pid"


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime


def spawn(
    argv: list[str], env: dict[str, str], pod_dir: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=pod_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (pod_dir / PIDFILE).write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
    return proc


def kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def exit_code(returncode: int) -> int:
    """Popen's -N for "killed by signal N" as a container exit code: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def terminate(
    proc: subprocess.Popen[bytes], grace: float, abort: Callable[[], bool] = lambda: False
) -> int:
    """SIGTERM the group, SIGKILL it after `grace` seconds (or once `abort()`), reap."""
    if proc.poll() is None:
        kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline and not abort():
            time.sleep(0.1)
    kill_group(proc.pid, signal.SIGKILL)  # also whatever the process left behind
    return exit_code(proc.wait())


def forget(pod_dir: Path) -> None:
    (pod_dir / PIDFILE).unlink(missing_ok=True)


def reap_orphans(pods_dir: Path) -> None:
    """SIGKILL the process groups recorded by a stand-in that died without cleaning up."""
    for pidfile in pods_dir.glob(f"*/{PIDFILE}"):
        with contextlib.suppress(ValueError, OSError):
            pid_s, start = pidfile.read_text().split()
            pid = int(pid_s)
            if _start_time(pid) == start:
                log.warning("killing orphaned process group %d (%s)", pid, pidfile.parent.name)
                kill_group(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)
