"""The invoice admin writes money, tokens, rules and discrepancies as people read them."""

import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from bridge.money import format_money, format_tokens
from usage import invoice_states
from usage.models import Invoice, InvoiceLine
from usage.rules import PricingSnapshot, Rule

pytestmark = pytest.mark.django_db


def _text(html: bytes) -> str:
    return re.sub(r"[ \t\n]+", " ", html.decode())  # keeps the no-break spaces


def _flag_first_line(invoice: Invoice) -> InvoiceLine:
    line = invoice.lines.order_by("position").first()
    assert line is not None
    line.discrepancy, line.reported_tokens = True, 1234567
    line.save()
    Invoice.objects.filter(pk=invoice.pk).update(discrepancies=1)
    return line


def test_the_changelist_writes_totals_tokens_and_discrepancies(
    drafts: list[Invoice], admin_client: Client
) -> None:
    _flag_first_line(drafts[1])
    page = admin_client.get("/admin/usage/invoice/")
    html = _text(page.content)
    usd = PricingSnapshot.from_json(drafts[0].snapshot)
    tokens = sum(i.tokens for i in drafts)
    assert tokens >= 1000  # so the grouping shows
    subtotal = format_money(sum((i.subtotal for i in drafts), Decimal(0)), usd)
    total = format_money(sum((i.total for i in drafts), Decimal(0)), usd)
    totals = f"<td>USD</td><td>{format_tokens(tokens, usd)}</td><td>{subtotal}</td><td>{total}</td>"
    assert totals in html
    assert "," in format_tokens(tokens, usd)
    for invoice in drafts:
        assert f">{format_money(invoice.total, usd)}<" in html
        assert f">{format_tokens(invoice.tokens, usd)}<" in html
    assert not re.search(r"\d\.\d{5,}", html)  # no "25.2200000000000" nor "5.0000"
    assert html.count("⚠ 1 line") == 1  # only the invoice with one
    # The others show the admin's empty value, not a mark.
    assert html.count('class="field-discrepancies_display">-</td>') == 2

    # The filter offers words, not the counts ("0"), and filters by them.
    assert "With discrepancies" in html
    assert "No discrepancies" in html
    assert '?discrepancies=0"' not in html
    held = admin_client.get("/admin/usage/invoice/?discrepancies=yes").context["cl"]
    assert [i.pk for i in held.result_list] == [drafts[1].pk]
    clean = admin_client.get("/admin/usage/invoice/?discrepancies=no").context["cl"]
    assert clean.result_count == 2
    assert admin_client.get("/admin/usage/invoice/?discrepancies=2")["Location"].endswith("?e=1")


def test_the_change_page_writes_the_invoice_for_people(
    drafts: list[Invoice], admin_client: Client
) -> None:
    line = _flag_first_line(drafts[0])
    invoice_states.issue_invoice(invoice_id=drafts[0].pk)
    invoice = Invoice.objects.get(pk=drafts[0].pk)
    assert str(invoice) == "INV-000001 (2026-10)"
    usd = PricingSnapshot.from_json(invoice.snapshot)
    html = _text(admin_client.get(f"/admin/usage/invoice/{invoice.pk}/change/").content)

    assert "<title>INV-000001 (2026-10) | Change invoice |" in html
    number = re.search(r"<label>Number:</label> <div class=\"readonly\">([^<]*)</div>", html)
    assert number is not None
    assert number.group(1) == "INV-000001"
    for amount in (invoice.subtotal, invoice.total):
        assert format_money(amount, usd) in html
    assert format_tokens(invoice.tokens, usd) in html
    assert not re.search(r"\d\.\d{4}\b", html.replace("1 token = ", ""))

    lines = list(invoice.lines.order_by("position"))
    assert len(lines) == 2
    for each in lines:
        assert format_money(each.amount, usd) in html
        assert format_tokens(each.tokens, usd) in html
        assert f"<p>{Rule.label_of(each.rule)}</p>" in html
    assert {each.rule for each in lines} == {"monthly_cap", "hourly"}
    assert "monthly_cap" not in html
    # When each line's server ran.
    assert '<td class="field-started"> <p>2026-10-01 00:00</p>' in html
    assert '<td class="field-ended"> <p>2026-10-05 04:00</p>' in html
    # One mark, on the line SolusIO disagrees with, saying what it reported.
    assert html.count("⚠ SolusIO reported") == 1
    assert f"⚠ SolusIO reported {format_tokens(line.reported_tokens or 0, usd)} tokens" in html
    assert "icon-no.svg" not in html
    assert "icon-yes.svg" not in html


def test_view_site_goes_to_the_portal(admin_client: Client) -> None:
    html = admin_client.get("/admin/").content.decode()
    assert f'<a href="{reverse("account-home")}">View site</a>' in html
    assert reverse("account-home") == "/account/"


def test_usage_rows_group_their_tokens(drafts: list[Invoice], admin_client: Client) -> None:
    html = admin_client.get("/admin/usage/usagerecord/").content.decode()
    assert '<td class="field-per_month">5,000</td>' in html
    assert '<td class="field-per_month">5000</td>' not in html


def test_the_held_filter_finds_drafts_held_for_either_reason(
    admin_client: Client, drafts: list[Invoice]
) -> None:
    Invoice.objects.filter(pk=drafts[0].pk).update(hold_reason="usage of a kind it cannot price")
    Invoice.objects.filter(pk=drafts[1].pk).update(hold_reason="Built from observed usage: …")
    html = admin_client.get("/admin/usage/invoice/").content.decode()
    assert "Held (unpriceable usage or fallback source)" in html
    held = admin_client.get("/admin/usage/invoice/?held=yes").context["cl"]
    assert sorted(i.pk for i in held.result_list) == sorted([drafts[0].pk, drafts[1].pk])
    assert admin_client.get("/admin/usage/invoice/?held=no").context["cl"].result_count == 1
    assert admin_client.get("/admin/usage/invoice/?held=maybe")["Location"].endswith("?e=1")
