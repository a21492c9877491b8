"""Loopback pod IPs: the whole 127.0.0.0/8 routes to `lo` on Linux, so every pod can
bind its own 127.0.0.N without any network setup.

TRADEPLANE_STANDIN_NET (default `127.0.0`) moves the pool to another /24 of the
loopback range, so that two checkouts can run their cluster tests side by side."""

from __future__ import annotations

import os
import threading


class LoopbackIPs:
    """NET.N for N in [first, 254]; an address is reused once its pod is gone."""

    def __init__(self, first: int = 2, net: str | None = None) -> None:
        if not 1 <= first <= 254:
            raise ValueError("first must be in 1..254")
        self.net = net or os.environ.get("TRADEPLANE_STANDIN_NET", "127.0.0")
        self.first, self.used, self.lock = first, set[str](), threading.Lock()

    def allocate(self, preferred: str | None = None) -> str:
        """The pod's previous IP when it is still free (stand-in restart), else the lowest."""
        with self.lock:
            candidates = [f"{self.net}.{n}" for n in range(self.first, 255)]
            if preferred is not None and preferred in candidates:
                candidates.insert(0, preferred)
            for ip in candidates:
                if ip not in self.used:
                    self.used.add(ip)
                    return ip
        raise RuntimeError("no free loopback IP left")

    def release(self, ip: str) -> None:
        with self.lock:
            self.used.discard(ip)
