"""A server with paid backups bills a backup line (R7) from the simulator's `/usage`, and
that line, with its rule, shows in the PDF, the CSV, the staff API, the preview and the
portal; a held draft says why in the admin and the API."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.template.loader import render_to_string
from django.test import Client

from bridge.money import NBSP
from pricing.tests.api_helpers import body, staff_client
from solusio.client import SolusIOClient
from solusio.testing import SimulatorInfo, fast_client, running_simulator
from usage import close, invoice_states, selectors
from usage.exports import invoices_csv
from usage.models import Invoice, InvoiceLine, UsageRecord
from usage.rules import Rule, period_of_month
from usage.tests.conftest import SIM_NOW
from usage.tests.test_money_display import pdf_text
from users.models import Customer

pytestmark = pytest.mark.django_db
OCT = datetime(2026, 10, 1, tzinfo=UTC)
MID_NOV = datetime(2026, 11, 15, 12, tzinfo=UTC)  # 348 hours into November


@pytest.fixture
def backed_up(
    sim: SimulatorInfo, client: SolusIOClient, customers: list[Customer], settings: Any
) -> Invoice:
    """Customer 1's October: a whole month on plan 1 (7/5000, backups at 10 %) with paid
    backups, closed as a draft."""
    settings.SOLUSIO_API_URL = sim.url
    settings.SOLUSIO_API_TOKEN = sim.token
    settings.SOLUSIO_VERIFY_TLS = False
    sim.control.add_server(
        user_id=1, plan_id=1, created_at=(OCT - timedelta(days=1)).isoformat(), backups=True
    )
    close.close_cycle(
        period=period_of_month(2026, 10, "UTC"), client=client, now=MID_NOV, auto_issue=False
    )
    return Invoice.objects.select_related("customer").get(customer_id=1)


def test_the_invoice_has_a_backup_line_of_ten_percent_of_the_capped_month(
    backed_up: Invoice,
) -> None:
    lines = [(x.item, x.hours, x.rule, x.tokens) for x in backed_up.lines.all()]
    assert lines == [("server", 744, "monthly_cap", 5000), ("backup", 744, "backups", 500)]
    assert backed_up.tokens == 5500
    assert backed_up.discrepancies == 0  # SolusIO's own backup charge agrees
    assert UsageRecord.objects.get(item="backup").backup_price == 10


def test_the_pdf_and_the_csv_show_the_backup_line(backed_up: Invoice) -> None:
    text = pdf_text(backed_up).replace(NBSP, " ")
    # The table wraps a cell over lines: the item, its unit (the percentage of the runtime
    # charge), the rule, the tokens and the amount.
    assert "(backups) — 1 Core, 1 GB RAM" in text
    assert "10 % of" in text
    assert f"744 7 5,000 {Rule.BACKUPS.label} 500 $0.50 USD" in text
    csv = invoices_csv(Invoice.objects.select_related("customer").prefetch_related("lines"))
    [row] = [x for x in csv.splitlines() if ",backup," in x]
    assert ",backups,500," in row


def test_the_admin_shows_the_backup_price_as_a_percentage(
    backed_up: Invoice, admin_client: Client
) -> None:
    page = admin_client.get(f"/admin/usage/invoice/{backed_up.pk}/change/").content.decode()
    cells = page.split('<td class="field-backup_percent">')[1:]
    # The server line has none (blank), the backup line its 10 % (was the raw "10.0000").
    assert [cell.split("</td>")[0].strip() for cell in cells] == [
        "<p></p>",
        f"<p>10{NBSP}%</p>",
    ]


def test_the_staff_api_shows_the_backup_line_and_its_percentage(backed_up: Invoice) -> None:
    api = staff_client(Invoice)
    detail = body(api.get(f"/api/v1/invoices/{backed_up.pk}/"))
    backup = [x for x in detail["lines"] if x["item"] == "backup"]
    assert [(x["rule"], x["tokens"], x["backup_price"]) for x in backup] == [
        ("backups", 500, "10.0000")
    ]
    assert detail["hold_reason"] == ""
    usage = body(staff_client(UsageRecord).get("/api/v1/usage/?customer=1"))["results"]
    assert {(x["item"], x["unknown_kind"]) for x in usage} == {
        ("server", False),
        ("backup", False),
    }


def test_the_preview_and_the_portal_show_backups(backed_up: Invoice, client: SolusIOClient) -> None:
    preview = selectors.preview_invoice(customer_id=1, client=client, now=MID_NOV)
    assert preview.draft is not None
    # 348 h × 7 = 2,436 tokens so far, and backups 10 % of it: 243.6 → 244.
    assert [(x.usage.item, x.charge.tokens) for x in preview.draft.lines] == [
        ("server", 2436),
        ("backup", 244),
    ]
    html = render_to_string("usage/_draft.html", {"draft": preview.draft})
    assert f"(backups, 10{NBSP}%)" in html
    assert '<td data-label="Rule">Backups</td><td class="num" data-label="Tokens">244</td>' in html
    answer = body(staff_client(Invoice).get("/api/v1/invoices/upcoming/?customer=1"))
    assert [(x["item"], x["rule"], x["backup_price"]) for x in answer["lines"]] == [
        ("server", "hourly", None),
        ("backup", "backups", "10"),
    ]
    invoice_states.issue_invoice(invoice_id=backed_up.pk)
    user = User.objects.create_user(username="customer:1", password="x")
    Customer.objects.filter(pk=1).update(user=user)
    browser = Client()
    browser.force_login(user)
    with time_machine.travel(MID_NOV, tick=False):
        page = browser.get("/account/invoices/").content.decode()
    # this month so far
    assert '<td data-label="Rule">Backups</td><td class="num" data-label="Tokens">244</td>' in page
    assert "$5.50\u00a0USD" in page  # October: 5,000 + 500 tokens at $0.001


def test_the_demo_simulators_invoices_show_backups(customers: list[Customer]) -> None:
    # The demo's simulator (bin/run): two customers, the nine showcase servers, paid
    # backups on three of them.
    with running_simulator(users=2, servers=9, now=SIM_NOW) as info, fast_client(info) as c:
        close.close_cycle(
            period=period_of_month(2026, 10, "UTC"), client=c, now=MID_NOV, auto_issue=False
        )
    backups = {
        (line.invoice.customer_id, line.server_id, line.plan_id, line.hours, line.tokens)
        for line in InvoiceLine.objects.filter(item="backup").select_related("invoice")
    }
    assert backups == {
        (1, 1, 1, 744, 500),  # 7/5000 capped at 5,000; 10 %
        (2, 4, 5, 744, 1116),  # hourly only, 744 × 10 = 7,440; 15 %
        (1, 9, 4, 744, 4000),  # 28/20000 capped at 20,000; 20 %
    }
