"""Exponential backoff for the loops that reconnect to the database."""

from __future__ import annotations


class Backoff:
    """Delays (seconds) that start at `initial` and double up to `maximum`."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._delay = initial

    def next(self) -> float:
        """The delay to wait now; the one after it is twice as long (at most `maximum`)."""
        delay = self._delay
        self._delay = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Start over at `initial` (after a success)."""
        self._delay = self.initial
