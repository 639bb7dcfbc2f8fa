"""The month-to-date preview (service, admin, API) and the customer's invoice pages."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from pricing.tests.api_helpers import body, staff_client
from solusio.client import SolusIOClient
from solusio.testing import SimulatorInfo
from usage import build, close, cycle, invoice_states, pull, selectors
from usage.models import Invoice, InvoiceStatus
from usage.rules import period_of_month
from users.models import Customer

pytestmark = pytest.mark.django_db
OCT = datetime(2026, 10, 1, tzinfo=UTC)
MID_NOV = datetime(2026, 11, 15, 12, tzinfo=UTC)  # 14.5 days = 348 hours into November
H = timedelta(hours=1)


@pytest.fixture
def sim_settings(sim: SimulatorInfo, settings: Any) -> SimulatorInfo:
    settings.SOLUSIO_API_URL = sim.url
    settings.SOLUSIO_API_TOKEN = sim.token
    settings.SOLUSIO_VERIFY_TLS = False
    return sim


@pytest.fixture
def running(customers: list[Customer], add_server: Callable[..., Any]) -> None:
    add_server(1, 1, OCT - 24 * H)  # steady on 7/5000
    add_server(2, 5, OCT - 24 * H)  # steady, hourly only


def test_the_live_preview_bills_the_month_so_far(client: SolusIOClient, running: None) -> None:
    preview = selectors.preview_invoice(customer_id=1, client=client, now=MID_NOV)
    assert preview.live  # no month-to-date pull yet: SolusIO is asked
    assert preview.period.label == "2026-11"
    draft = preview.draft
    assert draft is not None
    [line] = draft.lines
    assert (line.charge.hours, line.charge.tokens) == (348, 348 * 7)  # under the cap so far
    assert draft.totals.total == Decimal("2.44")  # 2,436 tokens × $0.001
    assert not Invoice.objects.exists()  # nothing stored
    assert selectors.preview_invoice(customer_id=3, client=client, now=MID_NOV).draft is None


@pytest.mark.both_databases
def test_the_preview_reads_the_hourly_month_to_date_pull(
    sim: SimulatorInfo, client: SolusIOClient, running: None
) -> None:
    assert pull.refresh_month_to_date(client=client, now=MID_NOV) == 2
    before = len(sim.control.calls(path="/usage"))
    later = MID_NOV + 2 * H
    preview = selectors.preview_invoice(customer_id=1, client=client, now=later)
    assert len(sim.control.calls(path="/usage")) == before  # from the database
    assert (preview.live, preview.as_of) == (False, MID_NOV)
    assert preview.draft is not None
    assert preview.draft.tokens == 348 * 7
    # The month-to-date rows are never an invoice: the close needs the whole month.
    with pytest.raises(cycle.CloseError, match="no complete usage pull"):
        build.build_invoices(period=preview.period, summary=cycle.CloseSummary("2026-11", False))
    # And the close of the month replaces them with the whole month's.
    close.close_cycle(period=preview.period, client=client, now=datetime(2026, 12, 2, tzinfo=UTC))
    assert Invoice.objects.get(customer_id=1).tokens == 5000  # 720 h: capped


def test_the_preview_in_the_api_and_the_admin(
    sim_settings: SimulatorInfo, running: None, admin_client: Client
) -> None:
    api = staff_client(Invoice)
    with time_machine.travel(MID_NOV, tick=False):
        answer = body(api.get("/api/v1/invoices/upcoming/?customer=2"))
        page = admin_client.get("/admin/usage/invoice/preview/2/")
        pull.refresh_month_to_date()
        stored = body(api.get("/api/v1/invoices/upcoming/?customer=2"))
    assert stored == answer
    assert answer["period"] == "2026-11"
    assert answer["tokens"] == 3480
    assert answer["lines"][0]["rule"] == "hourly"
    assert str(answer["total"]) == "3.4800"
    assert page.status_code == 200
    assert "$3.48\u00a0USD".encode() in page.content
    assert api.get("/api/v1/invoices/upcoming/?customer=99").status_code == 404
    assert api.get("/api/v1/invoices/upcoming/").status_code == 400


def test_the_preview_says_so_when_solusio_is_down(
    sim_settings: SimulatorInfo, running: None, settings: Any
) -> None:
    settings.SOLUSIO_API_URL = "http://127.0.0.1:9/api/v1"  # nothing listens there
    settings.SOLUSIO_RETRY_BASE_DELAY = settings.SOLUSIO_RETRY_MAX_DELAY = 0.01
    api = staff_client(Invoice)
    response = api.get("/api/v1/invoices/upcoming/?customer=2")
    assert response.status_code == 503
    assert set(body(response)) == {"message", "errors"}


def _login(customer: Customer) -> Client:
    user = User.objects.create_user(username=f"customer:{customer.pk}", password="x")
    Customer.objects.filter(pk=customer.pk).update(user=user)
    browser = Client()
    browser.force_login(user)
    return browser


def test_customers_see_their_issued_invoices_and_the_month_so_far(
    sim_settings: SimulatorInfo, client: SolusIOClient, running: None, customers: list[Customer]
) -> None:
    close.close_cycle(
        period=period_of_month(2026, 10, "UTC"),
        client=client,
        now=MID_NOV,
        auto_issue=False,
    )
    first, second = Invoice.objects.order_by("customer_id")
    invoice_states.issue_invoice(invoice_id=first.pk)
    ann, bob = _login(customers[0]), _login(customers[1])
    with time_machine.travel(MID_NOV, tick=False):
        page = ann.get("/account/invoices/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "INV-000001" in text
    assert "$5.00\u00a0USD" in text  # October, capped
    assert "$2.44\u00a0USD" in text  # November so far: 348 h × 7 = 2,436 tokens
    assert 'data-label="Tokens">2,436</td>' in text  # tokens grouped in thousands
    assert '<td data-label="Rule">Hourly</td>' in text  # the rule's label, not its code
    assert f"/account/invoices/{first.pk}/facturx/" in text  # the e-invoice, issue 12 §2
    assert ann.get(f"/account/invoices/{first.pk}/pdf/")["Content-Type"] == "application/pdf"
    assert bob.get(f"/account/invoices/{first.pk}/pdf/").status_code == 404  # not his
    assert bob.get(f"/account/invoices/{second.pk}/pdf/").status_code == 404  # a draft
    # The invoice's own page: its owner's only, and only once issued.
    assert f'href="/account/invoices/{first.pk}/"' in text
    detail = ann.get(f"/account/invoices/{first.pk}/")
    assert detail.status_code == 200
    assert "Invoice INV-000001" in detail.content.decode()
    assert bob.get(f"/account/invoices/{first.pk}/").status_code == 404  # not his
    assert bob.get(f"/account/invoices/{second.pk}/").status_code == 404  # a draft
    assert Client().get(f"/account/invoices/{first.pk}/").status_code == 302  # sign in first
    assert "draft" not in bob.get("/account/invoices/").content.decode().lower()
    anonymous = Client().get("/account/invoices/")
    assert anonymous.status_code == 302
    assert Invoice.objects.get(pk=second.pk).status == InvoiceStatus.DRAFT
