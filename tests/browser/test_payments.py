"""The portal's Payments page in a real browser: a partly paid invoice shows its balance,
the payment what it settled, the account page the balance; readable on a phone too."""

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from django.utils import timezone
from playwright.sync_api import Page, expect

from payments import services
from payments.models import PaymentMethod
from tests.browser.conftest import PASSWORD, Bridge
from tests.browser.test_portal import sign_in
from usage import invoice_states

Shot = Callable[[Page, str], Path]


def test_payments_page_after_a_partial_payment(page: Page, bridge: Bridge, shot: Shot) -> None:
    ann = bridge.customer("ann@example.com", name="Ann Example")
    invoice = invoice_states.issue_invoice(invoice_id=bridge.october_draft(ann).pk)
    services.record_payment(
        customer_id=ann.pk,
        amount=Decimal("2.00"),
        currency="USD",
        method=PaymentMethod.BANK_TRANSFER,
        received_at=timezone.now(),
        reference="BANK-20261103-1",
    )
    balance = invoice.total - Decimal("2.00")

    sign_in(page, bridge, "ann@example.com", PASSWORD)
    owed = page.locator("#balance td[data-label='Balance owed']")
    expect(owed).to_have_text(f"${balance:.2f}\u00a0USD")
    shot(page, "portal-home-balance")
    page.get_by_role("link", name="Your payments and credit").click()
    assert page.url == bridge.url + "/account/payments/"
    row = page.locator("#payments tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("BANK-20261103-1")
    expect(row).to_contain_text("Bank transfer")
    expect(row).to_contain_text(invoice.display_number)
    expect(row.locator("td[data-label='Amount']")).to_have_text("$2.00\u00a0USD")
    shot(page, "portal-payments")

    page.get_by_role("link", name="Your invoices").click()
    invoice_row = page.locator("#invoices tr", has_text=invoice.display_number)
    expect(invoice_row.locator("td[data-label='Balance']")).to_have_text(f"${balance:.2f}\u00a0USD")
    shot(page, "portal-invoices-balance")

    page.set_viewport_size({"width": 360, "height": 740})
    page.get_by_role("link", name="Your payments").click()
    card = page.locator("#payments tbody tr")
    # Stacked as a card: every cell labelled, the amount within the screen's width.
    box = card.locator("td[data-label='Amount']").bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 360
    shot(page, "portal-payments-phone")


def test_staff_record_a_payment_from_the_invoice_and_see_the_balance(
    page: Page, bridge: Bridge, shot: Shot
) -> None:
    from django.contrib.auth.models import User

    from tests.browser.test_admin import admin_login

    User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    ann = bridge.customer("ann@example.com", name="Ann Example")
    invoice = invoice_states.issue_invoice(invoice_id=bridge.october_draft(ann).pk)
    admin_login(page, bridge, PASSWORD)

    page.goto(f"{bridge.url}/admin/usage/invoice/{invoice.pk}/change/")
    page.get_by_role("link", name="Record a payment of this invoice…").click()
    expect(page.locator("input[name=amount]")).to_have_value(f"{invoice.total:.4f}")
    page.locator("input[name=amount]").fill("1.50")
    page.locator("input[name=reference]").fill("BANK-778")
    shot(page, "admin-record-payment")
    page.get_by_role("button", name="Record payment").click()
    expect(page.locator(".messagelist")).to_contain_text(
        "Recorded $1.50\u00a0USD by Bank transfer; 0 invoice(s) now paid."
    )
    allocation = page.locator(".inline-related tbody tr", has_text=invoice.display_number)
    expect(allocation).to_contain_text("$1.50\u00a0USD")
    shot(page, "admin-payment")

    page.goto(f"{bridge.url}/admin/users/customer/{ann.pk}/change/")
    balance = page.locator(".customer-payments table.balances")
    expect(balance).to_contain_text(f"${invoice.total - Decimal('1.50'):.2f}\u00a0USD")
    expect(page.locator(".customer-payments table.payments")).to_contain_text("BANK-778")
    page.locator(".customer-payments").scroll_into_view_if_needed()
    shot(page, "admin-customer-payments")
