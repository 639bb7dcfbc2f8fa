"""Which invoice a bank transfer pays: by RF reference, then by an invoice number in the
text, then by an amount only one open invoice has. Pure: the open invoices are loaded
once into a `Book` of dicts, so 10,000 entries cost dictionary look-ups, not queries."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from payments import references

SUGGESTIONS = 5
# "INV-000123", "INV000123", "inv 123", "Invoice 123", "invoice no. 123", "Rechnung Nr. 123",
# "facture n° 123": a number counts only behind a word that says it is an invoice's.
_INVOICE_NUMBER = re.compile(
    r"(?:\bINV[-\s]?|\b(?:invoice|rechnung|facture|factura|fattura)\s*"
    r"(?:no\.?|nr\.?|n°|number|num\.?|#)?\s*:?\s*#?)0*(\d{1,12})\b",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d{3,12}")
_WORD = re.compile(r"[^\W\d_]{3,}")


@dataclass(eq=False)  # identity: the book's lists remove this very invoice
class OpenInvoice:
    id: int
    number: int
    customer_id: int
    currency: str
    balance: Decimal
    open: bool  # issued and not paid; False for paid or void ones a transfer names
    void: bool = False


@dataclass(frozen=True)
class Entry:
    """What matching reads of a bank entry."""

    amount: Decimal
    currency: str
    text: str
    structured_reference: str
    counterparty: str


@dataclass(frozen=True)
class Decision:
    invoice: OpenInvoice | None
    how: str  # "reference", "number", "amount" when matched; the reason otherwise
    suggestions: tuple[int, ...] = ()


@dataclass
class Book:
    """Invoices by number, the open ones by (currency, balance) and by customer, and the
    customers' name words, for the entries of one import."""

    by_number: dict[int, OpenInvoice] = field(default_factory=dict)
    by_amount: dict[tuple[str, Decimal], list[OpenInvoice]] = field(
        default_factory=lambda: defaultdict(list)
    )
    by_customer: dict[int, list[OpenInvoice]] = field(default_factory=lambda: defaultdict(list))
    by_name_word: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def add(self, invoice: OpenInvoice) -> None:
        self.by_number[invoice.number] = invoice
        if invoice.open and invoice.balance > 0:
            self.by_amount[(invoice.currency, invoice.balance)].append(invoice)
            self.by_customer[invoice.customer_id].append(invoice)

    def add_customer_name(self, customer_id: int, *names: str) -> None:
        for word in name_words(" ".join(names)):
            self.by_name_word[word].add(customer_id)

    def paid(self, invoice: OpenInvoice, amount: Decimal) -> None:
        """A transfer of `amount` went to `invoice`: later entries see its new balance
        (what it paid beyond the balance settles other invoices, which stay listed; the
        amount rule may then pick one of them, and the payment becomes credit)."""
        if not invoice.open:
            return
        same = self.by_amount.get((invoice.currency, invoice.balance))
        if same is not None and invoice in same:
            same.remove(invoice)
        invoice.balance -= amount
        if invoice.balance > 0:
            self.by_amount[(invoice.currency, invoice.balance)].append(invoice)
        else:
            invoice.open = False
            self.by_customer[invoice.customer_id].remove(invoice)


def name_words(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text)} - _COMMON_WORDS


_COMMON_WORDS = {"gmbh", "ltd", "inc", "llc", "sarl", "the", "and", "und", "bank", "mrs", "mr"}


def referenced_numbers(entry: Entry) -> list[int]:
    """Invoice numbers the entry names: through RF references first, then in its text."""
    numbers: list[int] = []
    for reference in _references(entry):
        number = references.invoice_number(reference)
        if number is not None:
            numbers.append(number)
    return numbers + [int(n) for n in _INVOICE_NUMBER.findall(entry.text)]


def _references(entry: Entry) -> list[str]:
    found = []
    if entry.structured_reference and references.is_valid(entry.structured_reference):
        found.append(references.parse(entry.structured_reference))
    return found + references.find_in_text(entry.text)


def decide(entry: Entry, book: Book) -> Decision:
    for reference in _references(entry):
        number = references.invoice_number(reference)
        if number is not None and number in book.by_number:
            return _take(entry, book.by_number[number], "reference", book)
    named = [
        book.by_number[int(n)]
        for n in _INVOICE_NUMBER.findall(entry.text)
        if int(n) in book.by_number
    ]
    if named:
        if len({invoice.customer_id for invoice in named}) > 1:
            return _unmatched(entry, book, "the text names invoices of different customers")
        # One customer's invoices: the first still open (record_payment settles the rest
        # oldest first with what is left).
        return _take(entry, next((i for i in named if i.open), named[0]), "number", book)
    same = book.by_amount.get((entry.currency, entry.amount), [])
    if len(same) == 1:
        return _take(entry, same[0], "amount", book)
    if len(same) > 1:
        return _unmatched(
            entry,
            book,
            f"{len(same)} open invoices have this amount: no reference to tell them apart",
        )
    return _unmatched(entry, book, "no RF reference, invoice number or unique open amount")


def _take(entry: Entry, invoice: OpenInvoice, how: str, book: Book) -> Decision:
    if invoice.void:
        return _unmatched(entry, book, f"it names INV-{invoice.number:06d}, which is void")
    if invoice.currency != entry.currency:
        return _unmatched(
            entry,
            book,
            f"it names INV-{invoice.number:06d}, in {invoice.currency}; the transfer is in "
            f"{entry.currency}",
            first=(invoice.id,),
        )
    return Decision(invoice, how)


def _unmatched(entry: Entry, book: Book, reason: str, first: tuple[int, ...] = ()) -> Decision:
    return Decision(None, reason, suggest(entry, book, first))


def suggest(entry: Entry, book: Book, first: tuple[int, ...] = ()) -> tuple[int, ...]:
    """Open invoices staff most likely want, best first: any the entry names, those with
    its amount, those whose number appears among its digits, then the open invoices of
    customers whose name shares most words with the payer's."""
    ranked: list[int] = list(first)
    for number in referenced_numbers(entry):
        invoice = book.by_number.get(number)
        if invoice is not None and invoice.open:
            ranked.append(invoice.id)
    ranked += [i.id for i in book.by_amount.get((entry.currency, entry.amount), [])]
    for digits in _DIGITS.findall(entry.text):
        invoice = book.by_number.get(int(digits))
        if invoice is not None and invoice.open:
            ranked.append(invoice.id)
    words = name_words(entry.counterparty)
    if words:
        score: dict[int, int] = defaultdict(int)
        for word in words:
            for customer_id in book.by_name_word.get(word, ()):
                score[customer_id] += 1
        for customer_id in sorted(score, key=lambda c: (-score[c], c))[:SUGGESTIONS]:
            ranked += [
                i.id for i in book.by_customer.get(customer_id, []) if i.currency == entry.currency
            ]
    return tuple(dict.fromkeys(ranked))[:SUGGESTIONS]
