"""The demo customer pays an invoice through the fake Stripe in a real browser (issue 14 §2).

The fake Stripe runs in this process on its own port and POSTs its signed webhooks to the
live server; the webhook's task runs eagerly there (the `bridge` fixture's Celery setting),
so by the time the fake sends the browser back the payment is recorded."""

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from payments.fake_stripe import RunningFake
from payments.fake_stripe.testing import SECRET_KEY, WEBHOOK_SECRET, running_fake_stripe
from payments.models import Payment, PaymentMethod, StripeEvent
from pricing.models import Currency
from tests.browser.conftest import PASSWORD, Bridge
from tests.browser.test_portal import sign_in
from usage import invoice_states
from usage.models import Invoice, InvoiceStatus
from usage.rules import PricingSnapshot
from users import services
from users.models import Customer

Shot = Callable[[Page, str], Path]


@pytest.fixture
def stripe_on(bridge: Bridge, settings: Any) -> Iterator[RunningFake]:
    with running_fake_stripe(webhook_url=bridge.url + "/payments/stripe/webhook/") as fake:
        settings.STRIPE_SECRET_KEY = SECRET_KEY
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = fake.url
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        yield fake


def demo_invoice(jane: Customer) -> Invoice:
    """An issued October invoice for Jane, in her GBP with her currency's display."""
    gbp = Currency.objects.get(code="GBP")
    snapshot = PricingSnapshot(
        currency="GBP",
        token_price=gbp.token_price,
        decimals=gbp.decimals,
        display_prefix=gbp.display_prefix,
        display_suffix=gbp.display_suffix,
        thousands_separator=gbp.thousands_separator,
        decimals_separator=gbp.decimals_separator,
        discounts=(),
        taxes=(),
        compound=False,
        exempt=False,
    )
    invoice = Invoice.objects.create(
        customer=jane,
        period=date(2026, 10, 1),
        period_start=datetime(2026, 10, 1, tzinfo=UTC),
        period_end=datetime(2026, 11, 1, tzinfo=UTC),
        currency="GBP",
        subtotal=Decimal("37.10"),
        total=Decimal("37.10"),
        snapshot=snapshot.as_json(),
        generated_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    return invoice_states.issue_invoice(invoice_id=invoice.pk)


def test_the_demo_customer_pays_an_invoice_through_stripe_checkout(
    page: Page, bridge: Bridge, stripe_on: RunningFake, shot: Shot
) -> None:
    call_command("load_demo_data", stdout=StringIO())
    jane = Customer.objects.get(email="jane@example.co.uk")
    services.set_customer_password(customer_id=jane.pk, password=PASSWORD)
    invoice = demo_invoice(jane)

    sign_in(page, bridge, jane.email, PASSWORD)
    page.get_by_role("link", name="Your invoices").click()
    row = page.locator("tr", has_text=invoice.display_number)
    expect(row).to_contain_text("Issued")
    shot(page, "stripe-invoices-open")
    row.get_by_role("button", name="Pay now").click()

    # The fake Stripe's hosted page, for the open balance in pounds, by card only.
    expect(page.locator("#amount")).to_have_text("37.10 GBP")
    assert page.url.startswith(stripe_on.url + "/checkout/cs_test_")
    expect(page.get_by_label("SEPA Direct Debit", exact=False)).to_have_count(0)
    shot(page, "stripe-fake-checkout")
    page.get_by_role("button", name="Pay").click()

    # Back on the bridge, the webhook already processed.
    expect(page.locator("#pay-outcome")).to_contain_text("Paid on")
    assert page.url.startswith(bridge.url + "/account/pay/")
    expect(page.locator("#balance")).to_contain_text("£0.00")
    shot(page, "stripe-paid")
    page.get_by_role("link", name="Your invoices").click()
    row = page.locator("tr", has_text=invoice.display_number)
    expect(row).to_contain_text("Paid")
    expect(row.get_by_role("button", name="Pay now")).to_have_count(0)
    shot(page, "stripe-invoices-paid")

    (payment,) = Payment.objects.filter(customer=jane)
    assert (payment.method, payment.amount, payment.currency) == (
        PaymentMethod.CARD,
        Decimal("37.10"),
        "GBP",
    )
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID
    assert sorted(StripeEvent.objects.values_list("type", "state")) == [
        ("checkout.session.completed", "processed"),
        ("payment_intent.succeeded", "processed"),
    ]
