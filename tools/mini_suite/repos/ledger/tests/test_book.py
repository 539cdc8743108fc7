import pytest

from ledger import Ledger, Money, UnbalancedTransaction


def eur(amount):
    return Money(amount, "EUR")


def test_post_and_balance():
    book = Ledger()
    book.post("Salary", [("assets:bank", eur("2500")), ("income:salary", eur("-2500"))])
    book.post("Rent", [("expenses:rent", eur("900")), ("assets:bank", eur("-900"))])
    assert book.balance("assets:bank") == eur("1600")
    assert book.balance("income:salary") == eur("-2500")


def test_balance_includes_sub_accounts():
    book = Ledger()
    book.post("Groceries", [("expenses:food:market", eur("40")), ("assets:cash", eur("-40"))])
    book.post("Dinner", [("expenses:food:restaurant", eur("60")), ("assets:cash", eur("-60"))])
    assert book.balance("expenses:food") == eur("100")
    assert book.balance("expenses:foo") == eur("0")


def test_accounts_sorted():
    book = Ledger()
    book.post("x", [("b", eur("1")), ("a", eur("-1"))])
    assert book.accounts() == ["a", "b"]


def test_unbalanced_transaction_is_refused():
    book = Ledger()
    with pytest.raises(UnbalancedTransaction):
        book.post("Oops", [("a", eur("10")), ("b", eur("-9.99"))])
    assert book.accounts() == []


def test_single_posting_is_refused():
    with pytest.raises(UnbalancedTransaction):
        Ledger().post("Lonely", [("a", eur("0"))])
