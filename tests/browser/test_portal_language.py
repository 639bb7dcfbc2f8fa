"""The portal in the customer's language (issue 12 §5), in a real browser: a German customer
signs in, reads their invoices in German, downloads the PDF and the e-invoice (Factur-X) from
the invoice page, reads a payment on the Payments page, and switches the portal to English
with the language form."""

import io
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pdfplumber
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from payments import services as payments
from payments.models import PaymentMethod
from tests.browser.conftest import PASSWORD, SCREENSHOTS, Bridge
from usage import invoice_states
from usage.models import BillingSettings

Shot = Callable[[Page, str], Path]


def pdf_text(body: bytes) -> str:
    with pdfplumber.open(io.BytesIO(body)) as doc:
        return "\n".join(page.extract_text() or "" for page in doc.pages).replace("\u00a0", " ")


def test_a_german_customer_reads_and_downloads_their_invoice_in_german(
    page: Page, bridge: Bridge, shot: Shot
) -> None:
    seller = BillingSettings.load()
    seller.seller_name = "Beispiel Hosting GmbH"
    seller.seller_address = "Serverweg 1\n10115 Berlin"
    seller.seller_vat_id = "DE123456789"  # the e-invoice needs the seller's country
    seller.save()
    max_ = bridge.customer("max@example.de", name="Max Mustermann", country="DE", language="de")
    invoice = bridge.october_draft(max_)
    invoice_states.issue_invoice(invoice_id=invoice.pk)

    # The sign-in page follows the browser (English here); the pages after it, the customer.
    page.goto(bridge.url + "/account/login/")
    page.get_by_label("E-mail").fill("max@example.de")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-status")).to_contain_text("Kundennr.")
    assert page.evaluate("document.documentElement.lang") == "de"

    page.get_by_role("link", name="Ihre Rechnungen und der laufende Monat").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ihre Rechnungen")
    row = page.locator("#invoices tr", has_text="INV-")
    expect(row).to_contain_text("Oktober 2026")
    expect(row).to_contain_text("Ausgestellt")
    expect(row).to_contain_text("$5,00\u00a0USD")  # 5,000 tokens at $0.001, a decimal comma
    shot(page, "portal-invoices-de")

    with page.expect_download() as download_info:
        row.get_by_role("link", name="PDF").click()
    text = pdf_text(Path(download_info.value.path()).read_bytes())
    assert "Rechnungsnummer INV-000001" in text
    assert "Leistungszeitraum 01.10.2026 – 31.10.2026" in text
    assert "Gesamtbetrag $5,00 USD" in text
    download_info.value.save_as(SCREENSHOTS / "invoice-de.pdf")  # to look at

    with page.expect_download() as download_info:
        row.get_by_role("link", name="E-Rechnung").click()
    assert download_info.value.suggested_filename == "invoice-000001-facturx.pdf"
    facturx = Path(download_info.value.path()).read_bytes()
    attachments = PdfReader(io.BytesIO(facturx)).attachments
    xml = attachments["factur-x.xml"][0]
    assert "Fällig am".encode() in xml  # the payment terms' free text is German
    assert b"<ram:CategoryCode>" in xml  # codes stay codes
    assert "Rechnungsnummer INV-000001" in pdf_text(facturx)

    # A part payment by bank transfer: the account page and the Payments page say it in German.
    paid_on = datetime(2026, 11, 29, 10, tzinfo=UTC)
    payments.record_payment(
        customer_id=max_.pk,
        amount=Decimal("3.00"),
        currency="USD",
        method=PaymentMethod.BANK_TRANSFER,
        received_at=paid_on,
        reference="UEBERWEISUNG-1",
        now=paid_on,
    )
    page.get_by_role("link", name="← Ihr Konto").click()
    balance = page.locator("#balance")
    expect(balance.get_by_role("heading", level=2)).to_have_text("Zahlungen")
    expect(balance.locator("td[data-label='Offener Betrag']")).to_have_text("$2,00\u00a0USD")
    balance.get_by_role("link", name="Ihre Zahlungen und Ihr Guthaben").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ihre Zahlungen")
    expect(page.get_by_role("heading", name="Offene Beträge und Guthaben")).to_be_visible()
    received = page.locator("#payments tr", has_text="UEBERWEISUNG-1")
    expect(received.locator("td[data-label='Eingegangen']")).to_have_text("29.11.2026")
    expect(received.locator("td[data-label='Zahlungsart']")).to_have_text("Überweisung")
    expect(received.locator("td[data-label='Verrechnet mit']")).to_have_text("INV-000001")
    expect(received.locator("td[data-label='Betrag']")).to_have_text("$3,00\u00a0USD")
    expect(page.locator("body")).not_to_contain_text("Balance")
    shot(page, "portal-payments-de")

    # The customer chooses English on their account page; the portal follows at once.
    page.get_by_role("link", name="← Ihr Konto").click()
    page.get_by_label("Sprache").select_option("en")
    page.get_by_role("button", name="Speichern").click()
    expect(page.get_by_role("link", name="Your invoices and this month so far")).to_be_visible()
    expect(page.get_by_label("Language")).to_have_value("en")
    shot(page, "portal-home-after-choosing-english")
