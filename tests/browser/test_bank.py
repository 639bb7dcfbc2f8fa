"""Staff in a real browser: upload a camt.053 on the statements' list, see the unmatched
entries with their likely invoices, assign one to an invoice."""

from collections.abc import Callable
from pathlib import Path

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from payments.models import BankEntry, EntryState
from payments.tests.factories import sample_invoices
from pricing.models import Currency
from tests.browser.conftest import PASSWORD, Bridge
from tests.browser.test_admin import admin_login, run_action
from usage.models import Invoice, InvoiceStatus

Shot = Callable[[Page, str], Path]
STATEMENT = Path(__file__).resolve().parents[2] / "payments/tests/data/camt053_001_02.xml"


def test_upload_a_statement_and_assign_an_unmatched_transfer(
    page: Page, bridge: Bridge, shot: Shot
) -> None:
    User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    sample_invoices(Currency.objects.get(code="USD"), priced=True)

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
