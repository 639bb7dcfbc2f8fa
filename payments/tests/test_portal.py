"""The customer portal's payments: the Payments page, the balance and dunning step on the
account page, and paid and balance on the invoice list; only the customer's own."""

from collections.abc import Callable

import pytest
from django.test import Client

from payments.tests.conftest import received
from solusio.errors import SolusIOError
from usage import selectors
from usage.models import Invoice
from usage.tests.test_preview_and_account import _login
from users.models import Customer

pytestmark = pytest.mark.django_db


def text(response: object) -> str:
    content: bytes = response.content  # type: ignore[attr-defined]
    return content.decode().replace("\xa0", " ")


def test_the_payments_page_lists_the_customers_own_payments_and_credit(
    customer: Customer,
    other: Customer,
    issue: Callable[..., Invoice],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issue(customer, 10, "100.00")
    received(customer, "130.00", "B-ANN")
    received(other, "5.00", "B-BOB")
    issue(customer, 11, "50.00")  # uses 30.00 of credit, 20.00 left to pay
    browser = _login(customer)

    page = text(browser.get("/account/payments/"))
    assert "B-ANN" in page
    assert "B-BOB" not in page
    assert "INV-000001, INV-000002" in page
    assert '<td class="num amount" data-label="Balance owed">$20.00 USD</td>' in page
    assert '<td class="num amount" data-label="Credit">$0.00 USD</td>' in page
    assert "portal.css" in page

    home = text(browser.get("/account/"))
    assert '<a href="/account/payments/">Your payments and credit</a>' in home
    assert "$20.00 USD" in home

    monkeypatch.setattr(
        selectors, "preview_invoice", lambda **kw: (_ for _ in ()).throw(SolusIOError("down"))
    )
    invoices = text(browser.get("/account/invoices/"))
    assert '<td class="num amount" data-label="Paid">$30.00 USD</td>' in invoices
    assert '<td class="num amount balance" data-label="Balance">$20.00 USD</td>' in invoices

    anonymous = Client().get("/account/payments/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/account/login/")


def test_the_payments_page_in_german(customer: Customer, issue: Callable[..., Invoice]) -> None:
    Customer.objects.filter(pk=customer.pk).update(language="de")
    issue(customer, 10, "100.00")
    received(customer, "40.00", "B-ANN")
    browser = _login(Customer.objects.get(pk=customer.pk))

    response = browser.get("/account/payments/")
    assert response["Content-Language"] == "de"
    page = text(response)
    for field in (
        "<h1>Ihre Zahlungen</h1>",
        "<h2>Offene Beträge und Guthaben</h2>",
        '<th class="num">Offener Betrag</th>',
        '<td class="num amount" data-label="Offener Betrag">$60,00 USD</td>',
        '<td class="num amount" data-label="Guthaben">$0,00 USD</td>',
        "Guthaben ist Geld, das Sie gezahlt haben",
        '<td data-label="Eingegangen">01.11.2026</td>',
        '<td data-label="Zahlungsart">Überweisung</td>',
        '<td data-label="Verrechnet mit">INV-000001</td>',
        "← Ihr Konto",
    ):
        assert field in page, field
    for english in ("Balance", "Received", "Bank transfer", "Your payments"):
        assert english not in page, english

    home = text(browser.get("/account/"))
    assert "<h2>Zahlungen</h2>" in home
    assert '<a href="/account/payments/">Ihre Zahlungen und Ihr Guthaben</a>' in home
