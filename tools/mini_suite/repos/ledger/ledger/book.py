"""A tiny double-entry ledger."""

from collections import defaultdict

from ledger.money import Money


class UnbalancedTransaction(ValueError):
    """The postings of a transaction do not sum to zero."""


class Ledger:
    """Accounts and the transactions posted to them, in order."""

    def __init__(self):
        self._transactions = []

    def post(self, description, postings):
        """Record a transaction: ``postings`` is a list of (account, Money) pairs.

        The amounts must sum to zero in every currency involved.
        """
        postings = list(postings)
        if len(postings) < 2:
            raise UnbalancedTransaction("a transaction needs at least two postings")
        totals = defaultdict(lambda: 0)
        for _, money in postings:
            totals[money.currency] += money.amount
        unbalanced = {cur: total for cur, total in totals.items() if total != 0}
        if unbalanced:
            raise UnbalancedTransaction(
                "%r does not balance: %s"
                % (description, ", ".join("%s %s" % (t, c) for c, t in sorted(unbalanced.items())))
            )
        self._transactions.append((description, postings))

    def accounts(self):
        """Every account that has postings, sorted."""
        return sorted({account for _, postings in self._transactions for account, _ in postings})

    def balance(self, account, currency="EUR"):
        """The sum of ``account``'s postings in ``currency`` (including sub-accounts)."""
        total = Money(0, currency)
        for _, postings in self._transactions:
            for name, money in postings:
                if money.currency == currency and (name == account or name.startswith(account + ":")):
                    total += money
        return total

    def statement(self, account, currency="EUR"):
        """(description, amount, running balance) for each posting to ``account``."""
        lines = []
        running = Money(0, currency)
        for description, postings in self._transactions:
            for name, money in postings:
                if name == account and money.currency == currency:
                    running += money
                    lines.append((description, money, running))
        return lines
