"""Staff in a real browser: upload a camt.053 on the statements' list, see the unmatched
entries with their likely invoices, assign one to an invoice."""

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from payments.models import BankEntry, EntryState
from pricing.models import Currency
from tests.browser.conftest import PASSWORD, Bridge
from tests.browser.test_admin import admin_login, run_action
from usage import invoice_states
from usage.models import Invoice, InvoiceStatus
from usage.selectors import PricingContext
from users.models import Customer

Shot = Callable[[Page, str], Path]
STATEMENT = Path(__file__).resolve().parents[2] / "payments/tests/data/camt053_001_02.xml"
ISSUED = datetime(2026, 11, 1, 1, tzinfo=UTC)


def issued(customer: Customer, month: int, total: str) -> Invoice:
    invoice = Invoice.objects.create(
        customer=customer,
        period=date(2026, month, 1),
        period_start=datetime(2026, month, 1, tzinfo=UTC),
        period_end=datetime(2026, month + 1, 1, tzinfo=UTC),
        currency="USD",
        subtotal=Decimal(total),
        total=Decimal(total),
        snapshot=PricingContext(ISSUED).snapshot(customer).as_json(),
        generated_at=ISSUED,
    )
    invoice_states.issue_invoices(invoice_ids=[invoice.pk], now=ISSUED)
    return Invoice.objects.get(pk=invoice.pk)


def test_upload_a_statement_and_assign_an_unmatched_transfer(
    page: Page, bridge: Bridge, shot: Shot
) -> None:
    User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    usd = Currency.objects.get(code="USD")
    ann, bob, carol = (
        Customer.objects.create(email=f"{name.lower()}@example.com", name=name, currency=usd)
        for name in ("Ann Example", "Bob Builder", "Carol Jones")
    )
    made = [
        issued(ann, 9, "100.00"),
        issued(bob, 9, "50.00"),
        issued(ann, 10, "75.25"),
        issued(bob, 10, "30.00"),
        issued(carol, 9, "30.00"),
        issued(carol, 10, "42.42"),
    ]
    assert [invoice.number for invoice in made] == [1, 2, 3, 4, 5, 6]

    page.set_viewport_size({"width": 1600, "height": 900})  # the entries' list is wide
    admin_login(page, bridge, PASSWORD)
    page.goto(bridge.url + "/admin/payments/bankstatement/")
    form = page.locator("#statement-upload")
    expect(form).to_contain_text("Import a bank statement")
    form.locator("input[type=file]").set_input_files(str(STATEMENT))
    shot(page, "bank-statement-upload")
    form.get_by_role("button", name="Import and match").click()
    expect(page.locator(".messagelist")).to_contain_text("matched 3, unmatched 2")
    expect(page.locator("#result_list")).to_contain_text("2 open invoices have this amount")
    expect(page.locator("#result_list")).to_contain_text("INV-000005")
    shot(page, "bank-entries-unmatched")

    ambiguous = BankEntry.objects.get(external_id="2026112900004")
    run_action(page, ambiguous.pk, "assign_to_invoice")
    expect(page.locator("#content")).to_contain_text("Likely invoices")
    page.get_by_label("INV-000005").check()
    shot(page, "bank-entry-assign")
    page.get_by_role("button", name="Record the payment").click()
    expect(page.locator(".messagelist")).to_contain_text(
        "Recorded the transfer of 30.00\u00a0USD on INV-000005; paid 1 invoice(s)"
    )
    shot(page, "bank-entry-assigned")

    ambiguous.refresh_from_db()
    assert ambiguous.state == EntryState.MATCHED
    assert Invoice.objects.get(number=5).status == InvoiceStatus.PAID
    assert Invoice.objects.get(number=4).status == InvoiceStatus.ISSUED
    assert [Invoice.objects.get(number=n).status for n in (1, 2, 6)] == [InvoiceStatus.PAID] * 3
