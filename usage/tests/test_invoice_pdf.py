"""The invoice PDF as a legal document (DESIGN §6): every required field, columns that never
overlap, a running head and "page x of y" on every page, details frozen on issue."""

import io
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pdfplumber
import pytest

from bridge.money import NBSP
from pricing.models import Currency
from usage import invoice_states, legal, pdf
from usage.emails import invoice_message
from usage.legal import LegalDetails, buyer_of, issue_and_due_date, seller_of
from usage.models import BillingSettings, Invoice, InvoiceLine
from usage.pdf import LINE_WIDTHS, render_invoice_pdf
from usage.rules import LINE_COLUMNS, PricingSnapshot, UsageInput, build_invoice
from usage.tests.test_rules_invoice import SEED
from users.models import Customer

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
LONG_NAME = "customer-production-database-primary-" * 5 + "end"  # 188 characters, no spaces
ISSUED_AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def usage_row(n: int, name: str) -> UsageInput:
    hours = 1 + n % 744
    return UsageInput(
        n,
        f"uuid-{n}",
        name,
        1 + n % 4,
        f"VPS {1 + n % 4} GB RAM, {20 * (1 + n % 4)} GB SSD",
        "additional_ip" if n % 7 == 0 else "server",
        OCTOBER,
        OCTOBER + timedelta(hours=hours),
        hours,
        7 + n % 30,
        5000 if n % 3 else 0,
        None,
    )


@pytest.fixture
def seller(db: None) -> BillingSettings:
    row = BillingSettings.load()
    row.seller_name = "Example Hosting Ltd"
    row.seller_address = "1 Server Street\nLondon EC1A 1AA\nUnited Kingdom"
    row.seller_vat_id = "GB123456789"
    row.seller_registration = "Registered in England and Wales, no. 01234567"
    row.support_email = "billing@example-hosting.test"
    row.payment_instructions = "Bank transfer to IBAN GB33BUKB20201555555555, BIC BUKBGB22"
    row.payment_link_template = "https://pay.example-hosting.test/?invoice={number}&amount={total}"
    row.payment_terms_days = 30
    row.invoice_footer = "Thank you for your business."
    row.save()
    return row


@pytest.fixture
def buyer(gbp: Currency) -> Customer:
    return Customer.objects.create(
        id=7,
        email="ops@acme.test",
        name="Ada Lovelace",
        company_name="ACME Widgets GmbH",
        billing_address="Hauptstraße 5\n10115 Berlin",
        country="DE",
        vat_id="DE999999999",
        currency=gbp,
    )


def make_invoice(
    customer: Customer, pricing: PricingSnapshot, lines: int, extra: Sequence[UsageInput] = ()
) -> Invoice:
    """A draft of `lines` lines priced by the rules, the first one with a very long name."""
    rows = [usage_row(n, LONG_NAME if n == 1 else f"web-{n:03d}") for n in range(1, lines + 1)]
    draft = build_invoice([*rows, *extra], pricing)
    totals = draft.totals
    invoice = Invoice.objects.create(
        customer=customer,
        period=OCTOBER.date(),
        period_start=OCTOBER,
        period_end=datetime(2026, 11, 1, tzinfo=UTC),
        currency=pricing.currency,
        tokens=draft.tokens,
        subtotal=totals.subtotal,
        tax_total=totals.total - totals.subtotal,
        total=totals.total,
        snapshot=pricing.as_json(),
        taxes=[
            {"label": t.label, "rate": str(t.rate), "base": str(t.base), "amount": str(t.amount)}
            for t in totals.taxes
        ],
        generated_at=OCTOBER,
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(invoice=invoice, **dict(zip(LINE_COLUMNS, values, strict=True)))
        for values in draft.line_values
    )
    return invoice


def issue(invoice: Invoice, now: datetime = ISSUED_AT) -> Invoice:
    invoice_states.issue_invoices(invoice_ids=[invoice.pk], now=now)
    return Invoice.objects.select_related("customer").get(pk=invoice.pk)


def words_of(pdf: bytes) -> list[list[dict[str, Any]]]:
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        return [page.extract_words(keep_blank_chars=False) for page in doc.pages]


def text_of(pdf: bytes) -> str:
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        return "\n".join(page.extract_text() or "" for page in doc.pages).replace(NBSP, " ")


def column_text(pdf: bytes, column: int) -> str:
    """The text of page 1 inside one column of the line table, with the wrapping undone."""
    mm = 72 / 25.4
    left = 10 + sum(LINE_WIDTHS[:column])
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        page = doc.pages[0]
        box = (left * mm, 0, (left + LINE_WIDTHS[column]) * mm, page.height)
        text = page.crop(box).extract_text()
    return text.replace("\n", "").replace(NBSP, " ")


def overlaps(words: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of words whose boxes overlap (by more than a hair: rounding of the positions)."""
    hair = 0.2
    found = []
    ordered = sorted(words, key=lambda w: w["top"])
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if b["top"] >= a["bottom"] - hair:
                break
            if a["x0"] < b["x1"] - hair and b["x0"] < a["x1"] - hair:
                found.append((a["text"], b["text"]))
    return found


@pytest.mark.django_db
def test_a_500_line_invoice_has_every_field_no_overlapping_words_and_a_head_per_page(
    seller: BillingSettings, buyer: Customer, tmp_path: Path
) -> None:
    invoice = issue(make_invoice(buyer, SEED, 500))
    pdf = render_invoice_pdf(invoice)
    (tmp_path / "invoice-500.pdf").write_bytes(pdf)  # to look at: pytest --basetemp
    pages = words_of(pdf)
    assert len(pages) > 5
    for number, words in enumerate(pages, start=1):
        assert overlaps(words) == [], f"page {number}"
        page = " ".join(w["text"] for w in words)
        assert "Example Hosting Ltd · Invoice INV-000001" in page  # the running head
        if "web-" in page:
            assert {"Description", "Hours", "Amount"} <= set(page.split())  # the heading, again
        assert f"Page {number} of {len(pages)}" in page

    assert LONG_NAME in column_text(pdf, 0)  # wrapped, never cut
    text = text_of(pdf)
    assert "web-500" in text  # the last line too
    assert InvoiceLine.objects.filter(invoice=invoice).count() == 500
    required = [
        # seller
        "Example Hosting Ltd",
        "1 Server Street",
        "London EC1A 1AA",
        "VAT id: GB123456789",
        "Registered in England and Wales, no. 01234567",
        # customer
        "ACME Widgets GmbH",
        "Ada Lovelace",
        "Hauptstraße 5",
        "10115 Berlin",
        "VAT id: DE999999999",
        # number, dates, period of supply
        "Invoice INV-000001",
        "Issue date 2 November 2026",
        "Period of supply 1 October 2026 – 31 October 2026",
        "Due date 2 December 2026",
        # how to pay
        f"Please pay £{invoice.total:,.2f} GBP by 2 December 2026, quoting INV-000001.",
        "IBAN GB33BUKB20201555555555, BIC BUKBGB22",
        "Payment reference for bank transfers: RF74 0000 0000 1",
        f"https://pay.example-hosting.test/?invoice=INV-000001&amount={invoice.total:.2f}",
        "billing@example-hosting.test",
        "Thank you for your business.",
        f"Total £{invoice.total:,.2f} GBP",
        "Unit price",
    ]
    for field in required:
        assert field in text, field
    # Per tax rate: the taxable amount and the tax (compound: State Tax on subtotal + City Tax).
    for tax in invoice.taxes:
        base, amount = Decimal(tax["base"]), Decimal(tax["amount"])
        assert f"{tax['label']} {tax['rate']} % £{base:,.2f} GBP £{amount:,.2f} GBP" in text
    assert f"Total tax £{invoice.tax_total:,.2f} GBP" in text
    assert "No tax charged" not in text


@pytest.mark.django_db
def test_each_line_shows_description_hours_unit_price_and_amount(
    seller: BillingSettings, buyer: Customer
) -> None:
    invoice = issue(make_invoice(buyer, SEED, 3))
    lines = text_of(render_invoice_pdf(invoice)).splitlines()
    line = InvoiceLine.objects.get(invoice=invoice, position=2)
    unit = SEED.token_price * line.tokens_per_hour  # before the discount, as stated below
    row = next(text for text in lines if text.startswith("web-002"))
    assert row.split()[:2] == ["web-002", "—"]
    assert f" {line.hours} " in row
    assert f"£{unit} GBP" in row
    assert row.endswith(f"£{line.amount:,.2f} GBP")
    assert any("Discount applied to every line: Loyal" in text for text in lines)


@pytest.mark.django_db
def test_a_fixed_monthly_line_states_its_price_per_month(
    seller: BillingSettings, buyer: Customer
) -> None:
    fixed = usage_row(9, "mail-1")._replace(tokens_per_hour=0, tokens_per_month=3000)
    invoice = issue(make_invoice(buyer, SEED, 0, extra=[fixed]))
    # 3,000 tokens × £0.00079 a month, before the discount.
    assert "£2.37000 GBPper month" in column_text(render_invoice_pdf(invoice), 4)


@pytest.mark.django_db
def test_an_issued_invoice_keeps_the_seller_and_customer_it_was_issued_with(
    seller: BillingSettings, buyer: Customer
) -> None:
    invoice = issue(make_invoice(buyer, SEED, 2))
    before = render_invoice_pdf(invoice)
    assert invoice.legal["customer"]["vat_id"] == "DE999999999"
    assert invoice.legal["due_date"] == "2026-12-02"

    seller.seller_address = "99 New Road\nManchester M1 1AA"
    seller.seller_vat_id = "GB000000000"
    seller.payment_terms_days = 7
    seller.save()
    Customer.objects.filter(pk=buyer.pk).update(
        billing_address="Neue Allee 1\n80331 München", company_name="ACME Renamed AG"
    )

    reread = Invoice.objects.select_related("customer").get(pk=invoice.pk)
    after = text_of(render_invoice_pdf(reread))
    assert text_of(before) == after
    assert "1 Server Street" in after
    assert "Hauptstraße 5" in after
    assert not any(new in after for new in ("New Road", "GB000000000", "Neue Allee", "Renamed"))

    # A draft shows the details as they are now, and no dates it does not have yet.
    other = Customer.objects.create(email="x@acme.test", currency=buyer.currency)
    draft = make_invoice(other, SEED, 1)
    Customer.objects.filter(pk=other.pk).update(billing_address="Neue Allee 1\n80331 München")
    draft = Invoice.objects.select_related("customer").get(pk=draft.pk)
    text = text_of(render_invoice_pdf(draft))
    assert "Draft invoice (not issued)" in text
    for current in ("99 New Road", "GB000000000", "Neue Allee 1"):
        assert current in text
    assert "Issue date Not issued yet" in text
    assert "Due date 7 days after issue" in text
    assert draft.legal == {}


@pytest.mark.django_db
def test_issuing_freezes_what_details_on_issue_says(
    seller: BillingSettings, buyer: Customer
) -> None:
    # On PostgreSQL the details are made by the database (details_on_issue_sql): the same
    # value as the Python definition, quotes, line breaks, accents and empty fields alike.
    Customer.objects.filter(pk=buyer.pk).update(
        name='Ada "the Countess" Lovelace', tax_exemption_reason="Reverse charge\\art. 196"
    )
    plain = Customer.objects.create(email="plain@acme.test", currency=buyer.currency)
    first, second = make_invoice(buyer, SEED, 1), make_invoice(plain, SEED, 1)
    invoice_states.issue_invoices(invoice_ids=[first.pk, second.pk], now=ISSUED_AT)
    expected = legal.details_on_issue(customer_ids=[buyer.pk, plain.pk], now=ISSUED_AT)
    for invoice, customer in ((first, buyer), (second, plain)):
        stored = Invoice.objects.get(pk=invoice.pk).legal
        assert stored == expected[customer.pk]
        assert (
            stored
            == LegalDetails(
                seller_of(seller),
                buyer_of(Customer.objects.get(pk=customer.pk)),
                *issue_and_due_date(ISSUED_AT, seller.payment_terms_days),
            ).as_json()
        )


@pytest.mark.django_db
def test_without_tax_the_invoice_gives_the_customers_exemption_reason(
    seller: BillingSettings, buyer: Customer
) -> None:
    reason = "Reverse charge: VAT to be accounted for by the recipient"
    Customer.objects.filter(pk=buyer.pk).update(tax_exemption_reason=reason)
    buyer.refresh_from_db()
    invoice = issue(make_invoice(buyer, replace(SEED, taxes=()), 2))
    text = text_of(render_invoice_pdf(invoice))
    assert f"No tax charged: {reason}" in text
    assert "Tax amount" not in text  # no tax table
    assert invoice.legal["customer"]["tax_exemption_reason"] == reason


@pytest.mark.django_db
def test_the_due_date_is_the_issue_date_in_the_billing_zone_plus_the_terms(
    seller: BillingSettings, buyer: Customer, settings: Any
) -> None:
    settings.BILLING_TIMEZONE = "Pacific/Auckland"  # UTC+13 in November
    invoice = issue(make_invoice(buyer, SEED, 1), now=datetime(2026, 11, 2, 11, 30, tzinfo=UTC))
    assert (invoice.legal["issue_date"], invoice.legal["due_date"]) == ("2026-11-03", "2026-12-03")


@pytest.mark.django_db
def test_without_a_unicode_font_the_pdf_still_has_every_field_and_no_overlaps(
    seller: BillingSettings, buyer: Customer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.INVOICE_PDF_FONT = ""
    monkeypatch.setattr(pdf, "_FONT_CANDIDATES", ())  # as on a system without DejaVu
    invoice = issue(make_invoice(buyer, SEED, 40))
    rendered = render_invoice_pdf(invoice)
    for number, words in enumerate(words_of(rendered), start=1):
        assert overlaps(words) == [], f"page {number}"
    text = text_of(rendered)
    assert "Period of supply 1 October 2026 - 31 October 2026" in text
    assert "Hauptstraße 5" in text  # Latin-1 has it
    assert "web-040 - VPS" in text
    assert "?" not in text.replace("?invoice=", "")


@pytest.mark.django_db
def test_the_invoice_email_gives_the_due_date_the_payment_link_and_replies_to_support(
    seller: BillingSettings, buyer: Customer
) -> None:
    invoice = issue(make_invoice(buyer, SEED, 2))
    message = invoice_message(invoice)
    assert "Due date: 2 December 2026" in message.body
    assert (
        f"Pay online: https://pay.example-hosting.test/?invoice=INV-000001&amount={invoice.total:.2f}"
        in message.body
    )
    assert "Bank transfer reference: RF74 0000 0000 1" in message.body
    assert message.reply_to == ["billing@example-hosting.test"]
