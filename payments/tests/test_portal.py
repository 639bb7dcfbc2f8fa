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
