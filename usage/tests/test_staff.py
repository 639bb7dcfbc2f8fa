"""Invoices for staff: state changes, the admin, the API, PDF and CSV."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from bridge.money import format_money
from pricing.tests.api_helpers import body, staff_client
from usage import invoice_states
from usage.models import SELLER_FIELDS, Invoice, InvoiceStatus
from usage.pdf import render_invoice_pdf
from usage.rules import PricingSnapshot
from users.models import Customer

pytestmark = pytest.mark.django_db
OCT = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
AFTER = datetime(2029, 1, 1, tzinfo=UTC)


@pytest.mark.both_databases
def test_the_invoice_life_cycle(drafts: list[Invoice]) -> None:
    a, b, c = drafts
    with pytest.raises(invoice_states.InvoiceStateError):
        invoice_states.mark_paid(invoice_id=a.pk)  # a draft is not payable
    assert invoice_states.issue_invoice(invoice_id=b.pk).number == 1
    assert invoice_states.issue_invoice(invoice_id=a.pk).number == 2
    with pytest.raises(invoice_states.InvoiceStateError):
        invoice_states.issue_invoice(invoice_id=a.pk)
    with pytest.raises(invoice_states.InvoiceStateError, match="only drafts"):
        invoice_states.regenerate_invoice(invoice_id=a.pk)
    voided = invoice_states.void_invoice(invoice_id=a.pk)
    assert (voided.status, voided.number) == (InvoiceStatus.VOID, 2)  # void keeps the number
    paid = invoice_states.mark_paid(invoice_id=b.pk)
    assert paid.status == InvoiceStatus.PAID
    assert paid.paid_at is not None
    with pytest.raises(invoice_states.InvoiceStateError, match="paid, not open"):
        invoice_states.mark_paid(invoice_id=b.pk)  # paid once: nothing is recorded twice
    assert invoice_states.issue_invoice(invoice_id=c.pk).number == 3


@pytest.mark.both_databases
def test_regenerating_a_draft_picks_up_new_prices(drafts: list[Invoice], usd: Any) -> None:
    usd.token_price = Decimal("0.002")
    usd.save()
    fresh = invoice_states.regenerate_invoice(invoice_id=drafts[0].pk)
    assert fresh is not None
    assert fresh.pk == drafts[0].pk
    assert (drafts[0].total, fresh.total) == (Decimal("6.06"), Decimal("12.13"))  # 10 + 2.128
    assert fresh.snapshot["currency"]["token_price"] == "0.0020000000"


def test_the_pdf_writes_money_as_the_currency_says(drafts: list[Invoice], eur: Any) -> None:
    Customer.objects.filter(pk=1).update(currency=eur)
    invoice = invoice_states.regenerate_invoice(invoice_id=drafts[0].pk)
    assert invoice is not None
    pdf = render_invoice_pdf(Invoice.objects.select_related("customer").get(pk=invoice.pk))
    assert pdf.startswith(b"%PDF-")
    assert invoice.snapshot["currency"]["decimals_separator"] == ","
    # 5,000 tokens × €0.00091 = 4.55, 1,064 tokens → 0.96824 → 0.97: written "€5,52 EUR"
    assert (
        format_money(invoice.total, PricingSnapshot.from_json(invoice.snapshot)) == "€5,52\u00a0EUR"
    )


def test_admin_lists_filters_totals_and_acts(drafts: list[Invoice], admin_client: Client) -> None:
    page = admin_client.get("/admin/usage/invoice/?period=2026-10&status=draft")
    assert page.status_code == 200
    assert b"Totals of the invoices shown" in page.content
    assert page.context["cl"].result_count == 3
    assert admin_client.get("/admin/usage/invoice/?overdue=yes").status_code == 200
    assert admin_client.get("/admin/usage/invoice/?q=customer2").context["cl"].result_count == 1
    assert admin_client.get("/admin/usage/invoice/?customer=3").context["cl"].result_count == 1
    ids = [str(i.pk) for i in drafts[:2]]
    admin_client.post("/admin/usage/invoice/", {"action": "issue", "_selected_action": ids})
    assert list(
        Invoice.objects.exclude(number=None).order_by("number").values_list("number", flat=True)
    ) == [1, 2]
    csv = admin_client.post(
        "/admin/usage/invoice/", {"action": "export_csv", "_selected_action": ids}
    )
    assert csv["Content-Type"] == "text/csv"
    assert csv.content.decode().count("\n") == 1 + 4  # header + two lines per invoice
    detail = admin_client.get(f"/admin/usage/invoice/{drafts[0].pk}/change/")
    assert detail.status_code == 200
    assert b"Pricing snapshot" in detail.content
    assert b'name="status"' not in detail.content  # read-only
    assert b'name="legal"' not in detail.content
    assert b"<th>details</th><td>as issued</td>" in detail.content  # issued above
    draft = admin_client.get(f"/admin/usage/invoice/{drafts[2].pk}/change/")
    assert b"<th>details</th><td>current (frozen when issued)</td>" in draft.content
    pdf = admin_client.get(f"/admin/usage/invoice/{drafts[0].pk}/pdf/")
    assert pdf["Content-Type"] == "application/pdf"
    orphans = admin_client.get("/admin/usage/usagerecord/?orphan=yes")
    assert orphans.status_code == 200
    assert admin_client.get("/admin/usage/billingsettings/").status_code == 302
    settings_page = admin_client.get("/admin/usage/billingsettings/1/change/").content.decode()
    for name in SELLER_FIELDS:
        assert f'name="{name}"' in settings_page


def test_the_staff_api_lists_and_acts(drafts: list[Invoice]) -> None:
    api = staff_client(Invoice)
    listed = body(api.get("/api/v1/invoices/?period=2026-10&status=draft"))
    assert listed["count"] == 3
    one = drafts[0].pk
    detail = body(api.get(f"/api/v1/invoices/{one}/"))
    assert [line["rule"] for line in detail["lines"]] == ["monthly_cap", "hourly"]
    assert detail["snapshot"]["currency"]["code"] == "USD"
    issued = api.post(f"/api/v1/invoices/{one}/issue/")
    assert issued.status_code == 200, issued.content
    assert body(issued)["number"] == 1
    again = api.post(f"/api/v1/invoices/{one}/regenerate/")
    assert again.status_code == 409
    assert set(body(again)) == {"message", "errors"}
    assert api.post(f"/api/v1/invoices/{one}/mark-paid/").status_code == 200
    assert api.get(f"/api/v1/invoices/{one}/pdf/")["Content-Type"] == "application/pdf"
    assert detail["legal"] == {}  # a draft has no frozen details
    frozen = body(api.get(f"/api/v1/invoices/{one}/"))["legal"]
    assert frozen["customer"]["email"] == "customer1@example.test"
    assert frozen["seller"]["payment_terms_days"] == 14
    assert api.get("/api/v1/invoices/export/?status=paid").content.decode().count("\n") == 3
    assert body(api.get("/api/v1/invoices/?status=paid"))["count"] == 1


def test_api_actions_need_the_change_permission(drafts: list[Invoice]) -> None:
    viewer = staff_client(Invoice, actions=("view",))
    assert viewer.get("/api/v1/invoices/").status_code == 200
    assert viewer.post(f"/api/v1/invoices/{drafts[0].pk}/issue/").status_code == 403
    assert Client().get("/api/v1/invoices/").status_code in (401, 403)


def test_the_api_lists_orphans(drafts: list[Invoice], add_server: Callable[..., Any]) -> None:
    from usage.models import UsageRecord

    api = staff_client(UsageRecord)
    assert body(api.get("/api/v1/usage/?orphan=true&period=2026-10"))["count"] == 0
    assert body(api.get("/api/v1/usage/?customer=1"))["count"] == 2


def test_the_api_edits_billing_settings_and_lists_dunning(customers: list[Customer]) -> None:
    from usage.models import BillingSettings, DunningEvent

    api = staff_client(BillingSettings)
    assert body(api.get("/api/v1/billing-settings/")) == {
        "auto_issue": False,
        "dunning_days": 14,
        "reminder_days": "-3, 1, 7",
        "email_invoices": True,
        "einvoice_pdf": False,
        "auto_collect": False,
        "seller_name": "",
        "seller_address": "",
        "seller_vat_id": "",
        "seller_registration": "",
        "support_email": "",
        "payment_instructions": "",
        "payment_link_template": "",
        "payment_terms_days": 14,
        "logo_path": "",
        "invoice_footer": "",
    }
    seller = {
        "auto_issue": True,
        "seller_name": "Example Hosting Ltd",
        "seller_address": "1 Server Street\nLondon",
        "seller_vat_id": "GB123456789",
        "payment_link_template": "https://pay.example.test/{number}?amount={total}",
        "payment_terms_days": 30,
        "logo_path": "examples/demo-logo.png",
    }
    changed = api.patch("/api/v1/billing-settings/", seller, format="json")
    assert changed.status_code == 200, changed.content
    row = BillingSettings.load()
    assert row.auto_issue
    assert (row.seller_name, row.seller_vat_id, row.payment_terms_days) == (
        "Example Hosting Ltd",
        "GB123456789",
        30,
    )
    for field, bad in (
        ("payment_link_template", "https://pay.example.test/{invoice_id}"),
        ("logo_path", "examples/no-such-logo.png"),
        ("logo_path", "README.md"),
        ("support_email", "not an address"),
        ("reminder_days", "-3, soon"),
    ):
        refused = api.patch("/api/v1/billing-settings/", {field: bad}, format="json")
        assert refused.status_code == 400, (field, bad)
        assert set(body(refused)["errors"]) == {field}
    DunningEvent.objects.create(customer=customers[0], action="suspended", reason="x", at=AFTER)
    events = staff_client(DunningEvent, actions=("view",))
    assert body(events.get("/api/v1/dunning-events/?customer=1"))["count"] == 1
    assert body(events.get("/api/v1/dunning-events/?customer=2"))["count"] == 0
