"""Loopback pod IPs: the whole 127.0.0.0/8 routes to `lo` on Linux, so every pod can
bind its own 127.0.0.N without any network setup."""

from __future__ import annotations

import threading


class LoopbackIPs:
    """127.0.0.N for N in [first, 254]; an address is reused once its pod is gone."""

    def __init__(self, first: int = 2) -> None:
        if not 1 <= first <= 254:
            raise ValueError("first must be in 1..254")
        self.first, self.used, self.lock = first, set[str](), threading.Lock()

    def allocate(self, preferred: str | None = None) -> str:
        """The pod's previous IP when it is still free (stand-in restart), else the lowest."""
        with self.lock:
            candidates = [f"127.0.0.{n}" for n in range(self.first, 255)]
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
