"""Exact money amounts and a tiny double-entry ledger."""

from ledger.book import Ledger, UnbalancedTransaction
from ledger.money import CurrencyMismatch, Money

__all__ = ["CurrencyMismatch", "Ledger", "Money", "UnbalancedTransaction"]
