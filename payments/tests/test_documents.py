"""The invoice's PDF and e-mail show what was paid on it, below the total, and the amount
still due."""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from payments.models import PaymentMethod
from payments.tests.conftest import ISSUED, received
from usage.emails import invoice_message
from usage.models import Invoice
from usage.pdf import render_invoice_pdf
from usage.tests.test_invoice_pdf import overlaps, text_of, words_of
from users.models import Customer

pytestmark = pytest.mark.django_db


def pay(customer: Customer, amount: str, reference: str, days: int, method: str) -> None:
    received(customer, amount, reference, at=ISSUED + timedelta(days=days), method=method)


def test_payments_and_credit_are_lines_below_the_total_with_the_amount_due(
    customer: Customer, issue: Callable[..., Invoice], tmp_path: Path
) -> None:
    pay(customer, "30.00", "B-0", -5, PaymentMethod.BANK_TRANSFER)  # credit before the invoice
    invoice = issue(customer, 10, "100.00")
    pay(customer, "20.00", "B-1", 2, PaymentMethod.BANK_TRANSFER)
    pay(customer, "5.00", "D-1", 3, PaymentMethod.SEPA_DEBIT)

    pdf = render_invoice_pdf(invoice)
    (tmp_path / "paid.pdf").write_bytes(pdf)  # to look at: pytest --basetemp
    text = text_of(pdf)
    assert "Total $100.00 USD\n" in text
    assert (
        "Credit applied -$30.00 USD\n"
        "Paid 2026-11-03 (bank transfer) -$20.00 USD\n"
        "Paid 2026-11-04 (SEPA Direct Debit) -$5.00 USD\n"
        "Amount due $45.00 USD\n"
    ) in text
    assert "Please pay $45.00 USD by 15 November 2026" in text
    for number, words in enumerate(words_of(pdf), start=1):
        assert overlaps(words) == [], f"page {number}"

    body = str(invoice_message(invoice).body).replace("\xa0", " ")
    assert (
        "Total: $100.00 USD\n"
        "Credit applied: -$30.00 USD\n"
        "Paid 2026-11-03 (bank transfer): -$20.00 USD\n"
        "Paid 2026-11-04 (SEPA Direct Debit): -$5.00 USD\n"
        "Amount due: $45.00 USD\n"
    ) in body

    pay(customer, "45.00", "B-2", 4, PaymentMethod.BANK_TRANSFER)
    settled = text_of(render_invoice_pdf(Invoice.objects.get(pk=invoice.pk)))
    assert "Amount due $0.00 USD" in settled
    assert "Paid in full: thank you." in settled
    assert "Please pay" not in settled


def test_an_unpaid_invoice_reads_as_before(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    invoice = issue(customer, 10, "100.00")
    text = text_of(render_invoice_pdf(invoice))
    assert "Amount due" not in text
    assert "Please pay $100.00 USD by 15 November 2026" in text
    assert "Amount due" not in str(invoice_message(invoice).body)


def test_a_german_invoice_says_what_was_paid_in_german(
    customer: Customer, issue: Callable[..., Invoice], tmp_path: Path
) -> None:
    Customer.objects.filter(pk=customer.pk).update(language="de")
    pay(customer, "30.00", "B-0", -5, PaymentMethod.BANK_TRANSFER)
    invoice = issue(customer, 10, "100.00")
    pay(customer, "20.00", "B-1", 2, PaymentMethod.BANK_TRANSFER)
    pay(customer, "5.00", "D-1", 3, PaymentMethod.SEPA_DEBIT)
    reference = invoice.printed_payment_reference
    assert reference.startswith("RF")

    pdf = render_invoice_pdf(invoice)
    (tmp_path / "bezahlt.pdf").write_bytes(pdf)  # to look at: pytest --basetemp
    text = text_of(pdf)
    assert (
        "Guthaben verrechnet -$30,00 USD\n"
        "Bezahlt am 03.11.2026 (Überweisung) -$20,00 USD\n"
        "Bezahlt am 04.11.2026 (SEPA-Lastschrift) -$5,00 USD\n"
        "Offener Betrag $45,00 USD\n"
    ) in text
    assert f"Zahlungsreferenz für Überweisungen: {reference}" in text
    assert "Paid" not in text
    assert "Amount due" not in text
    for number, words in enumerate(words_of(pdf), start=1):
        assert overlaps(words) == [], f"page {number}"

    body = str(invoice_message(invoice).body).replace("\xa0", " ")
    assert (
        "Guthaben verrechnet: -$30,00 USD\n"
        "Bezahlt am 03.11.2026 (Überweisung): -$20,00 USD\n"
        "Bezahlt am 04.11.2026 (SEPA-Lastschrift): -$5,00 USD\n"
        "Offener Betrag: $45,00 USD\n"
    ) in body
    assert f"Verwendungszweck für Überweisungen: {reference}" in body

    pay(customer, "45.00", "B-2", 4, PaymentMethod.BANK_TRANSFER)
    settled = text_of(render_invoice_pdf(Invoice.objects.get(pk=invoice.pk)))
    assert "Vollständig bezahlt: vielen Dank." in settled
