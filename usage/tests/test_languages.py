"""Invoices, e-invoices, e-mails and the portal in the customer's language (issue 12 §5): the
same issued invoice rendered for an English and a German customer."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import translation

from usage import invoice_states
from usage.einvoice import cii, schemas
from usage.einvoice.data import einvoice_of
from usage.emails import invoice_message
from usage.models import BillingSettings, CreditNote, Invoice
from usage.pdf import render_credit_note_pdf, render_invoice_pdf
from usage.tests import test_invoice_pdf
from usage.tests.test_invoice_pdf import make_invoice, overlaps, text_of, usage_row, words_of
from usage.tests.test_rules_invoice import SEED
from users import passwords, services
from users.models import Customer

pytestmark = pytest.mark.django_db
# The invoice PDF tests' seller (bank details, a payment link) and buyer (customer 7, in GBP).
seller = test_invoice_pdf.seller
buyer = test_invoice_pdf.buyer
# The issue's example date: issued on 29 November 2026, due 30 days later.
ISSUED = datetime(2026, 11, 29, 10, tzinfo=UTC)


def german(amount: Decimal) -> str:
    """£1,234.56 as German writes it: 1.234,56 (the reference, by string swapping)."""
    return f"{amount:,.2f}".translate(str.maketrans(",.", ".,"))


def issued(customer: Customer, lines: int, *, big: bool = False) -> Invoice:
    """An issued invoice of `lines` lines; `big`: with a £1,580 dedicated server, so the
    amounts need a thousands separator."""
    extra = [usage_row(99, "dedicated")._replace(tokens_per_hour=0, tokens_per_month=2_000_000)]
    invoice = make_invoice(customer, SEED, lines, extra=extra if big else ())
    invoice_states.issue_invoices(invoice_ids=[invoice.pk], now=ISSUED)
    return Invoice.objects.select_related("customer").get(pk=invoice.pk)


def speaks(customer: Customer, language: str) -> Invoice:
    """The customer now reads `language`; their invoice, read afresh."""
    fresh = Customer.objects.get(pk=customer.pk)  # with the portal login made since
    services.update_customer(customer=fresh, changes={"language": language})
    return Invoice.objects.select_related("customer").get(customer=customer)


def test_the_same_invoice_in_english_and_in_german(
    seller: BillingSettings, buyer: Customer, tmp_path: Path
) -> None:
    invoice = issued(buyer, 60, big=True)  # more than one page
    english = render_invoice_pdf(invoice)
    german_pdf = render_invoice_pdf(speaks(buyer, "de"))
    (tmp_path / "invoice-de.pdf").write_bytes(german_pdf)  # to look at: pytest --basetemp

    text = text_of(english)
    for field in (
        "Invoice INV-000001",
        "Issue date 29 November 2026",
        "Period of supply 1 October 2026 – 31 October 2026",
        "Due date 29 December 2026",
        f"Total £{invoice.total:,.2f} GBP",
        f"Page 1 of {len(words_of(english))}",
    ):
        assert field in text, field

    text = text_of(german_pdf)
    assert invoice.total > 1000  # so the German total shows its thousands separator
    for field in (
        "Rechnung INV-000001",
        "Rechnungsnummer INV-000001",
        "Rechnungsdatum 29.11.2026",
        "Leistungszeitraum 01.10.2026 – 31.10.2026",
        "Fällig am 29.12.2026",
        "Rechnungssteller",
        "Rechnungsempfänger",
        "USt-IdNr.: DE999999999",
        f"Zwischensumme ({invoice.tokens:_} Token) £{german(invoice.subtotal)} GBP".replace(
            "_", "."
        ),
        f"Gesamtbetrag £{german(invoice.total)} GBP",
        f"Bitte zahlen Sie £{german(invoice.total)} GBP bis zum 29.12.2026",
        "Zahlungsinformationen",
        f"Seite 1 von {len(words_of(german_pdf))}",
        f"Seite 2 von {len(words_of(german_pdf))}",
        "Festpreis",  # a rule's label (the dedicated server)
        "Stündlich",
    ):
        assert field in text, field
    # The tax table: rates and amounts with decimal commas.
    for tax in invoice.taxes:
        base, amount = Decimal(tax["base"]), Decimal(tax["amount"])
        rate = tax["rate"].replace(".", ",")
        assert f"{tax['label']} {rate} % £{german(base)} GBP £{german(amount)} GBP" in text
    # No English label is left, and no English decimal point in an amount.
    for word in ("Invoice number", "Due date", "Subtotal", "Total tax", "Page 1", "Hourly"):
        assert word not in text, word
    assert f"£{invoice.total:,.2f}" not in text
    # The labels are longer in German: still no overlapping words.
    assert all(overlaps(page) == [] for page in words_of(german_pdf))


def test_the_german_credit_note(seller: BillingSettings, buyer: Customer) -> None:
    invoice = issued(buyer, 2)
    services.update_customer(customer=buyer, changes={"language": "de"})
    invoice_states.void_invoice(invoice_id=invoice.pk, reason="Doppelt berechnet")
    note = CreditNote.objects.select_related("invoice__customer").get(invoice=invoice)
    text = text_of(render_credit_note_pdf(note))
    assert f"Stornorechnung {note.display_number}" in text
    assert "Storniert Rechnung INV-000001 vom 29.11.2026" in text
    assert f"£-{german(invoice.total)} GBP" in text or f"-£{german(invoice.total)} GBP" in text


def test_the_german_invoice_email(seller: BillingSettings, buyer: Customer) -> None:
    invoice = issued(buyer, 3)
    english = invoice_message(invoice)
    assert english.subject == "Invoice INV-000001 for October 2026"
    german_message = invoice_message(speaks(buyer, "de"))
    assert german_message.subject == "Rechnung INV-000001 für Oktober 2026"
    body = german_message.body
    assert body.startswith("Hallo Ada Lovelace,\n\nanbei erhalten Sie Ihre Rechnung INV-000001")
    assert f"Gesamtbetrag: £{german(invoice.total)}\u00a0GBP" in body
    assert "Fällig am: 29.12.2026" in body
    assert "Online bezahlen: https://pay.example-hosting.test/" in body
    assert "Vielen Dank." in body
    attached = german_message.attachments[0]
    assert "Rechnung INV-000001" in text_of(attached[1])  # the PDF speaks German too


def test_the_german_einvoice_texts_and_its_codes(seller: BillingSettings, buyer: Customer) -> None:
    invoice = issued(buyer, 3)
    data = einvoice_of(speaks(buyer, "de"))
    assert data.language == "de"
    assert data.payment_terms == "Fällig am 29.12.2026"
    assert data.notes[0] == "Rabatt Loyal: × 0,95"
    assert data.notes[1].startswith("Steuern: City Tax 6 % auf ")
    assert data.notes[1].endswith("(kumulativ)")
    line = data.lines[1]
    assert line.description.endswith(" Std., Stündlich")
    # Codes, amounts and dates in the XML stay as EN 16931 writes them; the schema agrees.
    xml = cii.cii_xml(data)
    schemas.check(xml, schemas.cii_schema())
    assert f"<ram:GrandTotalAmount>{invoice.total:.2f}</ram:GrandTotalAmount>".encode() in xml
    assert b'<udt:DateTimeString format="102">20261229</udt:DateTimeString>' in xml
    assert "Fällig am 29.12.2026".encode() in xml
    assert einvoice_of(speaks(buyer, "en")).payment_terms == "Due 29 December 2026"


def portal(customer: Customer) -> Client:
    user = services.ensure_portal_login(customer_id=customer.pk)
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")  # the browser's language loses to the customer's
    browser.force_login(user)
    return browser


def test_the_german_portal(seller: BillingSettings, buyer: Customer, settings: Any) -> None:
    settings.USAGE_SOURCE = "observed"  # the month so far needs no SolusIO
    invoice = issued(buyer, 3)
    speaks(buyer, "de")
    browser = portal(buyer)
    page = browser.get("/account/invoices/")
    assert page.status_code == 200
    assert page["Content-Language"] == "de"
    text = page.content.decode()
    assert '<html lang="de">' in text
    for field in (
        "<h1>Ihre Rechnungen</h1>",
        "Oktober 2026",
        f"£{german(invoice.total)}\u00a0GBP",
        "Ausgestellt",
        ">E-Rechnung</a>",
        f'data-label="Offen">£{german(invoice.total)}\u00a0GBP</td>',
        f"Referenz {invoice.printed_payment_reference}</small>",
        'title="Geben Sie diese Referenz bei einer Überweisung als Verwendungszweck an"',
        '<a href="/account/payments/">Ihre Zahlungen</a>',
        "Bisher keine Nutzung in diesem Monat.",
        "Abmelden",
    ):
        assert field in text, field
    home = browser.get("/account/").content.decode()
    assert "Kundennr. 7" in home
    assert "Control Panel öffnen" in home
    assert "Ihre Zahlungen und Ihr Guthaben" in home
    assert f"£{german(invoice.total)}\u00a0GBP" in home  # the balance owed
    payments = browser.get("/account/payments/").content.decode()
    assert "<h1>Ihre Zahlungen</h1>" in payments
    assert "Noch keine Zahlungen." in payments
    # Staff pages and the sign-in page follow the browser instead.
    assert "Sign in" in Client(HTTP_ACCEPT_LANGUAGE="en").get("/account/login/").content.decode()
    assert "Anmelden" in Client(HTTP_ACCEPT_LANGUAGE="de").get("/account/login/").content.decode()
    # The customer's documents download in German.
    pdf = browser.get(f"/account/invoices/{invoice.pk}/pdf/")
    assert "Rechnungsnummer INV-000001" in text_of(pdf.content)
    # Back in English: nothing of the German request stayed active.
    speaks(buyer, "en")
    assert translation.get_language() == "en"
    assert "<h1>Your invoices</h1>" in browser.get("/account/invoices/").content.decode()


def test_customers_choose_their_language_in_the_portal(buyer: Customer) -> None:
    browser = portal(buyer)
    assert 'name="language"' in browser.get("/account/").content.decode()
    response = browser.post("/account/language/", {"language": "de"})
    assert response.status_code == 302
    assert Customer.objects.get(pk=buyer.pk).language == "de"
    assert "Sprache" in browser.get("/account/").content.decode()
    browser.post("/account/language/", {"language": "xx"})  # not a language: ignored
    assert Customer.objects.get(pk=buyer.pk).language == "de"
    assert Client().post("/account/language/", {"language": "en"}).status_code == 302  # sign in
    assert Customer.objects.get(pk=buyer.pk).language == "de"


def test_the_german_reset_email(buyer: Customer) -> None:
    services.update_customer(customer=buyer, changes={"language": "de"})
    sent = passwords.send_reset(customer_id=buyer.pk, reset_url="https://bill.test/account/reset/")
    assert sent
    message = mail.outbox[-1]
    assert message.subject == "Wählen Sie ein neues Passwort für Ihr Konto"
    assert message.body.startswith("Hallo Ada Lovelace,\n\njemand (hoffentlich Sie)")
    assert "https://bill.test/account/reset/#" in message.body
    assert "Minuten lang" in message.body
