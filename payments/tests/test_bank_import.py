"""Bank statements: camt.053 (.001.02 and .001.08) and CSV imported once, entries matched by
reference, invoice number and unique amount, the rest left to staff with suggestions."""

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from payments import references
from payments.bank import parsing, services
from payments.bank.parsing import StatementError
from payments.models import BankEntry, BankStatement, EntryState, Payment, PaymentMethod
from payments.tests.factories import sample_invoices
from pricing.models import Currency
from usage.models import Invoice, InvoiceStatus
from users.models import Customer

pytestmark = pytest.mark.django_db
DATA = Path(__file__).parent / "data"
D = Decimal
IBAN = "DE89370400440532013000"
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def invoices(usd: Currency) -> dict[int, Invoice]:
    return sample_invoices(usd)


def status(invoice: Invoice) -> str:
    return Invoice.objects.get(pk=invoice.pk).status


def entry(external_id: str) -> BankEntry:
    return BankEntry.objects.get(external_id=external_id)


def test_camt053_001_02_is_read_as_the_bank_wrote_it() -> None:
    parsed = parsing.parse(read("camt053_001_02.xml"))
    assert (parsed.format, parsed.account, parsed.skipped) == ("camt053", IBAN, 2)
    first, second, *_, foreign = parsed.entries
    assert (first.external_id, first.amount, first.currency) == (
        "2026112900001",
        D("100.00"),
        "USD",
    )
    assert (first.structured_reference, first.counterparty) == ("RF74000000001", "Ann Example")
    assert first.booked_on.isoformat() == "2026-11-29"
    assert second.text == "Payment for INV-000002, thanks"
    assert (foreign.currency, foreign.text) == ("EUR", "rf20 0000 0000 3 part payment")


def test_camt053_001_08_reads_the_wrapped_status_names_and_dates() -> None:
    parsed = parsing.parse(read("camt053_001_08.xml"))
    assert parsed.skipped == 1  # a reversed fee: money back, not a customer's transfer
    overlap, german, gift = parsed.entries
    assert gift.text == "Gift"
    assert overlap.external_id == "2026112900003"
    assert (german.text, german.counterparty) == ("Rechnung Nr. 3 Kundennummer 1", "Example GmbH")
    assert german.booked_on.isoformat() == "2026-11-30"
    # No bank reference: a stable hash of what the entry says.
    assert german.external_id.startswith("sha256:")
    assert german.external_id == parsing.parse(read("camt053_001_08.xml")).entries[1].external_id


def test_a_camt053_import_marks_invoices_paid(invoices: dict[int, Invoice]) -> None:
    summary = services.import_statement(read("camt053_001_02.xml"), filename="s.xml", now=NOW)
    assert (summary.entries, summary.new, summary.duplicates, summary.skipped) == (5, 5, 0, 2)
    assert (summary.matched, summary.unmatched, summary.invoices_paid) == (3, 2, 3)
    # By RF reference, by invoice number in the text, by the only open 42.42.
    for number in (1, 2, 6):
        assert status(invoices[number]) == InvoiceStatus.PAID
    assert Invoice.objects.get(number=1).paid_at == datetime(2026, 11, 29, tzinfo=UTC)
    payment = entry("2026112900001").payment
    assert payment is not None
    assert (payment.method, payment.reference) == (
        PaymentMethod.BANK_TRANSFER,
        f"{IBAN}:2026112900001",
    )
    assert (payment.customer_id, payment.amount) == (1, D("100.00"))
    # Two open invoices of 30.00: ambiguous, so staff choose; Carol's invoice among the
    # suggestions (same amount, and her name).
    ambiguous = entry("2026112900004")
    assert ambiguous.state == EntryState.UNMATCHED
    assert "2 open invoices have this amount" in ambiguous.reason
    assert set(ambiguous.suggestions) == {invoices[4].pk, invoices[5].pk}
    # It names INV-000003, which is in USD: a currency mismatch waits with a reason.
    foreign = entry("2026112900006")
    assert foreign.state == EntryState.UNMATCHED
    assert "in USD; the transfer is in EUR" in foreign.reason
    assert foreign.suggestions[0] == invoices[3].pk
    assert status(invoices[3]) == InvoiceStatus.ISSUED
    # The debit and the pending entry are not recorded at all.
    assert BankEntry.objects.count() == 5
    assert not BankEntry.objects.filter(external_id__in=["2026112900005", "2026112900007"])


def test_the_same_file_twice_changes_nothing(invoices: dict[int, Invoice]) -> None:
    content = read("camt053_001_02.xml")
    services.import_statement(content, now=NOW)
    before = (Payment.objects.count(), BankEntry.objects.count(), BankStatement.objects.count())
    again = services.import_statement(content, now=NOW)
    assert again.already_imported
    assert (again.new, again.duplicates, again.matched) == (0, 5, 0)
    assert "already imported" in str(again)
    assert (Payment.objects.count(), BankEntry.objects.count(), BankStatement.objects.count()) == (
        before
    )


def test_overlapping_statements_record_a_transfer_once(invoices: dict[int, Invoice]) -> None:
    services.import_statement(read("camt053_001_02.xml"), now=NOW)
    summary = services.import_statement(read("camt053_001_08.xml"), now=NOW)
    assert (summary.entries, summary.new, summary.duplicates) == (3, 2, 1)
    assert BankEntry.objects.filter(external_id="2026112900003").count() == 1
    assert Payment.objects.filter(amount=D("42.42")).count() == 1
    # "Rechnung Nr. 3" names INV-000003.
    assert (summary.matched, summary.unmatched) == (1, 1)
    assert status(invoices[3]) == InvoiceStatus.PAID
    gift = BankEntry.objects.get(amount=D("5.00"))
    assert gift.state == EntryState.UNMATCHED
    assert gift.account == IBAN  # spaces in the .08 file's IBAN do not make another account


def test_a_csv_statement_with_semicolons_and_decimal_commas(invoices: dict[int, Invoice]) -> None:
    summary = services.import_statement(read("statement.csv"), filename="bank.csv", now=NOW)
    assert (summary.format, summary.entries, summary.skipped) == ("csv", 2, 1)
    assert (summary.matched, summary.unmatched) == (1, 1)
    assert status(invoices[4]) == InvoiceStatus.PAID
    assert BankEntry.objects.get(state=EntryState.UNMATCHED).amount == D("1234.56")
    # The same rows in another file (a re-export with a different header order, commas).
    other = (
        b"counterparty,amount,date,currency,reference\nBob Builder,30.00,2026-11-29,USD,INV000004\n"
    )
    again = services.import_statement(other, now=NOW)
    assert (again.new, again.duplicates) == (0, 1)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("1234.56", "1234.56"),
        ("1,234.56", "1234.56"),
        ("1234,56", "1234.56"),
        ("1.234,56", "1234.56"),
        ("-7,5", "-7.5"),
    ],
)
def test_amounts_in_either_notation(amount: str, expected: str) -> None:
    assert parsing._amount(amount, "x") == D(expected)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"<Document><unclosed>", "not well-formed XML"),
        (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.054.001.02'/>", "not a camt.053"),
        (
            b"<?xml version='1.0'?><!DOCTYPE d [<!ENTITY x 'boom'>]><d>&x;</d>",
            "entities or a DTD",
        ),
        (b"date;amount\n2026-11-29;10\n", "lacks the column(s) currency"),
        (b"date;amount;currency\n2026-11-29;ten;USD\n", "line 2: 'ten' is not an amount"),
        (b"date;amount;currency\n2026-13-45;10;USD\n", "line 2: '2026-13-45' is not a date"),
    ],
)
def test_a_malformed_file_is_a_clear_error_and_stores_nothing(content: bytes, message: str) -> None:
    with pytest.raises(StatementError, match=re.escape(message)):
        services.import_statement(content)
    assert not BankStatement.objects.exists()


def test_staff_assign_an_unmatched_entry_or_ignore_it(invoices: dict[int, Invoice]) -> None:
    services.import_statement(read("camt053_001_02.xml"), now=NOW)
    ambiguous = entry("2026112900004")
    recorded = services.assign(entry_id=ambiguous.pk, invoice_id=invoices[5].pk, now=NOW)
    assert recorded.settled == [invoices[5].pk]
    ambiguous.refresh_from_db()
    assert (ambiguous.state, ambiguous.payment, ambiguous.suggestions) == (
        EntryState.MATCHED,
        recorded.payment,
        [],
    )
    with pytest.raises(services.EntryError, match="is matched"):
        services.assign(entry_id=ambiguous.pk, invoice_id=invoices[5].pk, now=NOW)
    foreign = entry("2026112900006")
    # The currency still differs: refused with record_payment's reason, nothing changes.
    with pytest.raises(services.services.PaymentError, match="in USD, the payment in EUR"):
        services.assign(entry_id=foreign.pk, invoice_id=invoices[3].pk, now=NOW)
    assert services.ignore(entry_ids=[foreign.pk, ambiguous.pk]) == 1
    assert entry("2026112900006").state == EntryState.IGNORED


def test_matching_again_after_a_new_invoice_picks_up_waiting_entries(
    invoices: dict[int, Invoice], issue: Callable[..., Invoice]
) -> None:
    services.import_statement(read("camt053_001_08.xml"), now=NOW)
    gift = BankEntry.objects.get(amount=D("5.00"))
    assert gift.state == EntryState.UNMATCHED
    issue(Customer.objects.get(pk=3), 11, "5.00")
    result = services.match_entries([gift.pk], now=NOW)
    assert (result.matched, result.invoices_paid) == (1, 1)
    assert services.match_entries([gift.pk], now=NOW).matched == 0  # nothing left to match


def test_an_rf_reference_of_an_unknown_invoice_falls_through_to_the_amount(
    invoices: dict[int, Invoice],
) -> None:
    stranger = references.for_invoice(999)
    csv = f"date,amount,currency,reference\n2026-11-29,42.42,USD,{stranger}\n".encode()
    summary = services.import_statement(csv, now=NOW)
    assert summary.matched == 1
    assert status(invoices[6]) == InvoiceStatus.PAID
