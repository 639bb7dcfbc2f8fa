"""What customers read: amounts, tokens, rates, discounts and rules, written one way (bridge.money)
in the portal's invoice tables, the PDF and the e-mail."""

import io
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pdfplumber
import pytest
from django.template.loader import render_to_string

from bridge.money import NBSP
from pricing.models import Currency, Discount, TaxRule
from usage import invoice_states
from usage.emails import invoice_message
from usage.models import Invoice
from usage.pdf import render_invoice_pdf
from usage.rules import Rule, build_invoice
from usage.tests.test_rules_invoice import SEED, usage
from users.models import Customer

RAW_CODES = ("monthly_cap", "fixed_monthly", "×0.950000", "E+")

# The seed's pricing with a multiplier stored as the admin stores it and a rate whose
# Decimal.normalize() would print "1E+1".
GBP_SEED = replace(
    SEED,
    discounts=(("Loyal", Decimal("0.950000")),),
    taxes=(("City Tax", Decimal("10.000")), ("State Tax", Decimal("2.000"))),
)


def plain(text: str) -> str:
    return text.replace(NBSP, " ")


def test_every_rule_has_a_label_and_no_label_is_a_code() -> None:
    assert [r.label for r in Rule] == ["Hourly", "Monthly cap", "Fixed monthly", "Free", "Backups"]
    assert Rule.label_of("monthly_cap") == "Monthly cap"
    assert Rule.label_of("some_new_rule") == "Some new rule"  # words, even when unknown


def test_the_portal_draft_table_shows_labels_grouped_tokens_and_unbreakable_amounts() -> None:
    draft = build_invoice(
        [usage(1, 744, 7, 5000), usage(2, 10, 0, 1500), usage(3, 744, 2, 0), usage(4, 5, 0, 0)],
        GBP_SEED,
    )
    html = render_to_string("usage/_draft.html", {"draft": draft})
    for label in ("Monthly cap", "Fixed monthly", "Hourly", "Free"):
        assert f'<td data-label="Rule">{label}</td>' in html
    assert not any(code in html for code in RAW_CODES)
    assert '<td class="num" data-label="Tokens/month">5,000</td>' in html  # the cap, grouped
    assert "Subtotal (7,988 tokens)" in html
    assert f"Loyal: 5{NBSP}% discount (×0.95)" in html
    assert f"City Tax 10{NBSP}%" in html
    # 7,988 × 0.00079 × 0.95 per line, rounded per line: 3.75 + 1.13 + 1.12 + 0 = 6.00
    assert f"£6.00{NBSP}GBP" in html
    assert "£6.00 GBP" not in html  # no breakable space inside an amount
    # A phone shows each row as a card, every cell labelled (the portal's stylesheet).
    assert '<td class="num amount" data-label="Amount">' in html


def test_tokens_beside_a_comma_decimal_currency_use_its_thousands_separator() -> None:
    euro = replace(GBP_SEED, thousands_separator=".", decimals_separator=",")
    html = render_to_string(
        "usage/_draft.html", {"draft": build_invoice([usage(1, 744, 7, 5000)], euro)}
    )
    assert 'data-label="Tokens/month">5.000</td>' in html
    assert 'data-label="Tokens/month">5,000</td>' not in html


@pytest.fixture
def gbp_draft(
    drafts: list[Invoice], gbp: Currency, loyalty: Discount, seed_taxes: list[TaxRule]
) -> Invoice:
    """Customer 1's October in GBP, with the seed's 5 % discount and London's two taxes:
    a line capped at 5,000 tokens and an hourly one."""
    customer = Customer.objects.get(pk=1)
    Customer.objects.filter(pk=1).update(currency=gbp, country="GB", region="London")
    customer.discounts.add(loyalty)
    invoice = invoice_states.regenerate_invoice(invoice_id=drafts[0].pk)
    assert invoice is not None
    return Invoice.objects.select_related("customer").get(pk=invoice.pk)


def pdf_text(invoice: Invoice) -> str:
    with pdfplumber.open(io.BytesIO(render_invoice_pdf(invoice))) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages)


@pytest.mark.django_db
def test_the_pdf_writes_rules_tokens_discount_and_money_for_people(gbp_draft: Invoice) -> None:
    text = pdf_text(gbp_draft)
    assert not any(code in text for code in RAW_CODES)
    lines = plain(text).splitlines()
    assert any("Monthly cap" in line and "5,000" in line for line in lines)
    assert any("Hourly" in line for line in lines)
    assert "Special Client Group Discount, 5 % discount (×0.95)" in plain(text)
    assert "City Tax 6 %" in plain(text)
    assert "1 token = £0.00079 GBP" in plain(text)
    total = plain(f"£{gbp_draft.total:.2f} GBP")
    assert any(line.startswith("Total") and line.endswith(total) for line in lines)


@pytest.mark.django_db
def test_the_invoice_email_states_the_total_as_one_unbreakable_amount(
    gbp_draft: Invoice, settings: Any
) -> None:
    body = invoice_message(gbp_draft).body
    assert f"Total: £{gbp_draft.total:.2f}{NBSP}GBP" in body
