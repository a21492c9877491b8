"""Tradeplane operator: reconciles TradingModule resources into runtime pods.

The folder is `operator/`; it is imported as `tradeplane_operator` so that it never
shadows the standard library's `operator` module.
"""

__version__ = "0.1.0"
