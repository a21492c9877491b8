"""Tradeplane module runtime: runs one trading module per pod."""

__version__ = "0.1.0"
