"""A tolerant, configurable `/usage` pull (issue 11 §2), on recorded pages.

Each page in `recorded/` is a `/usage` answer as a SolusIO might give it, with one variation
the parser tolerates. Each goes through the parser alone, then through the real HTTP path
(a close against a server answering with the page), and must bill the same lines.
"""

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client

from pricing.tests.api_helpers import body, staff_client
from solusio.client import SolusIOClient
from solusio.testing import FAST_RETRY, RecordedServer, serving_recorded
from solusio.usage_schema import MAX_ITEM_LENGTH, UsageEndpointUnusable, parse_usage_row
from usage import close
from usage.models import CloseRun, CloseRunState, Invoice, InvoiceStatus, UsagePull, UsageRecord
from usage.rules import Rule, period_of_month
from usage.tasks import close_previous_period
from users.models import Customer

RECORDED = Path(__file__).parent / "recorded"
OCTOBER = period_of_month(2026, 10, "UTC")
LATER = datetime(2027, 1, 1, tzinfo=UTC)

# (server, item, hours, rule, tokens) per customer, as each recorded page must bill.
EXPECTED: dict[str, dict[int, list[tuple[int, str, int, str, int]]]] = {
    # No hours: every started hour (R1) of started_at..ended_at; a null ended_at runs to
    # the period's end (server 101: all of October), and "hours": null counts the same.
    "hours_absent.json": {
        1: [
            (101, "server", 744, Rule.MONTHLY_CAP, 5000),
            (102, "server", 1, Rule.HOURLY, 7),  # 5 minutes
            (103, "server", 2, Rule.HOURLY, 14),  # 1 h 1 s
        ]
    },
    # "700" is 700; "5.5" is 6 (every started hour counts).
    "hours_string.json": {
        1: [(101, "server", 700, Rule.HOURLY, 4900), (102, "server", 6, Rule.HOURLY, 42)]
    },
    "string_ids.json": {1: [(101, "server", 744, Rule.MONTHLY_CAP, 5000)]},
    # No tokens: nothing to compare with, so no discrepancy.
    "tokens_absent.json": {
        1: [
            (101, "server", 744, Rule.MONTHLY_CAP, 5000),
            (101, "additional_ip", 744, Rule.MONTHLY_CAP, 500),
        ]
    },
    # R7, DESIGN §5's worked numbers at 10 %, and 12.5 % of a 10,000 cap.
    "backups.json": {
        1: [
            (101, "server", 744, Rule.MONTHLY_CAP, 5000),
            (101, "backup", 744, Rule.BACKUPS, 500),
            (102, "server", 700, Rule.HOURLY, 4900),
            (102, "backup", 700, Rule.BACKUPS, 490),
            (103, "server", 1, Rule.HOURLY, 7),
            (103, "backup", 1, Rule.BACKUPS, 1),
        ],
        2: [
            (201, "server", 744, Rule.MONTHLY_CAP, 10000),
            (201, "backup", 744, Rule.BACKUPS, 1250),
        ],
    },
}


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def client_for(server: RecordedServer) -> SolusIOClient:
    return SolusIOClient(server.url, "recorded", retry=FAST_RETRY, read_timeout=5)


@pytest.fixture
def usage_page(request: pytest.FixtureRequest) -> Iterator[RecordedServer]:
    """A server answering `/usage` with the recorded page named by the test's parameter."""
    with serving_recorded({"/usage": (200, recorded(request.param))}) as server:
        yield server


def lines_of(customer_id: int) -> list[tuple[int, str, int, str, int]]:
    invoice = Invoice.objects.get(customer_id=customer_id, period=OCTOBER.month)
    return [
        (line.server_id, line.item, line.hours, line.rule, line.tokens)
        for line in invoice.lines.order_by("position")
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_recorded_page_parses(name: str) -> None:
    page = recorded(name)
    got = [
        (
            row.user.billing_user_id,
            row.server.id,
            row.item,
            row.hours_within(OCTOBER.start, OCTOBER.end),
        )
        for row in (parse_usage_row(item) for item in page["data"])
    ]
    want = [
        (customer, server, item, hours)
        for customer, lines in EXPECTED[name].items()
        for server, item, hours, _, _ in lines
    ]
    assert sorted(got) == sorted(want)


@pytest.mark.django_db
@pytest.mark.parametrize("usage_page", sorted(EXPECTED), indirect=True)
def test_each_recorded_page_bills_through_the_http_path(
    usage_page: RecordedServer, customers: list[Customer], request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.params["usage_page"]
    with client_for(usage_page) as client:
        summary = close.close_cycle(period=OCTOBER, client=client, now=LATER, auto_issue=True)
    for customer_id, lines in EXPECTED[name].items():
        assert lines_of(customer_id) == lines
    assert summary.held == 0
    assert Invoice.objects.filter(status=InvoiceStatus.DRAFT).count() == 0
    # Asked with the default route and filter names.
    path, query = usage_page.requests[0]
    assert path == "/usage"
    assert query["filter[date_from]"] == OCTOBER.start.isoformat()
    assert query["filter[date_to]"] == OCTOBER.end.isoformat()


@pytest.mark.django_db
@pytest.mark.parametrize("usage_page", ["unknown_kind.json"], indirect=True)
def test_an_unknown_kind_is_stored_and_holds_only_its_customers_invoice(
    usage_page: RecordedServer, customers: list[Customer], admin_client: Client
) -> None:
    with client_for(usage_page) as client:
        summary = close.close_cycle(period=OCTOBER, client=client, now=LATER, auto_issue=True)
    stored = UsageRecord.objects.get(item="snapshot")
    assert (stored.customer_id, stored.server_id, stored.hours) == (1, 101, 744)
    assert stored.is_unknown_kind
    held = Invoice.objects.get(customer_id=1)
    assert held.status == InvoiceStatus.DRAFT  # auto-issue on, and still a draft
    assert "'snapshot': 1 rows, 744 h" in held.hold_reason
    assert lines_of(1) == [(101, "server", 744, Rule.MONTHLY_CAP, 5000)]  # not billed
    assert Invoice.objects.get(customer_id=2).status == InvoiceStatus.ISSUED
    assert (summary.held, summary.issued) == (1, 1)
    assert summary.figures["unknown_kinds"] == 1
    # Staff see it: the reason on the invoice, the rows in the usage lists.
    page = admin_client.get(f"/admin/usage/invoice/{held.pk}/change/").content.decode()
    assert "cannot price" in page
    assert "snapshot" in page
    listed = admin_client.get("/admin/usage/usagerecord/?unknown_kind=yes").content.decode()
    assert "snapshot" in listed
    assert "web201.example.test" not in listed
    api = staff_client(UsageRecord)
    unknown = body(api.get("/api/v1/usage/?unknown_kind=true"))["results"]
    assert [(x["item"], x["unknown_kind"]) for x in unknown] == [("snapshot", True)]
    assert (
        "cannot price"
        in body(staff_client(Invoice).get(f"/api/v1/invoices/{held.pk}/"))["hold_reason"]
    )


@pytest.mark.django_db
def test_the_route_and_filter_names_are_settings(settings: Any, customers: list[Customer]) -> None:
    settings.SOLUSIO_USAGE_PATH = "billing/usage/"
    settings.SOLUSIO_USAGE_FILTER_FROM = "filter[from]"
    settings.SOLUSIO_USAGE_FILTER_TO = "until"
    page = recorded("string_ids.json")
    with serving_recorded({"/billing/usage": (200, page)}) as server, client_for(server) as c:
        close.close_cycle(period=OCTOBER, client=c, now=LATER, auto_issue=False)
        assert server.requests[0][0] == "/billing/usage"
        assert server.requests[0][1]["filter[from]"] == OCTOBER.start.isoformat()
        assert server.requests[0][1]["until"] == OCTOBER.end.isoformat()
    assert lines_of(1) == EXPECTED["string_ids.json"][1]


BROKEN_ROW = {**recorded("string_ids.json"), "data": [{"user": {"id": 1}, "item": "server"}]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((404, {"message": "Not Found"}), "HTTP 404"),
        ((405, {"message": "The GET method is not supported for this route."}), "HTTP 405"),
        ((200, "<!doctype html><title>SolusIO</title>"), "not a usage list"),
        ((200, {"data": {"rows": []}}), "not a usage list"),
        ((200, BROKEN_ROW), "usage[0]"),
    ],
)
def test_an_unusable_endpoint_stops_the_close_in_one_line_naming_url_and_setting(
    answer: tuple[int, Any], reason: str, customers: list[Customer]
) -> None:
    with (
        serving_recorded({"/usage": answer}) as server,
        client_for(server) as client,
        pytest.raises(UsageEndpointUnusable) as caught,
    ):
        close.close_cycle(period=OCTOBER, client=client, now=LATER)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{server.url}/usage" in message
    assert "SOLUSIO_USAGE_PATH" in message
    assert reason in message
    assert caught.value.url == f"{server.url}/usage"
    assert not Invoice.objects.exists()
    assert UsagePull.objects.get(period=OCTOBER.month).completed_at is None


@pytest.mark.django_db
def test_the_close_command_says_it_in_one_line(settings: Any, customers: list[Customer]) -> None:
    with serving_recorded({}) as server:  # every path answers 404
        settings.SOLUSIO_API_URL = server.url
        settings.SOLUSIO_API_TOKEN = "recorded"
        settings.SOLUSIO_RETRY_BASE_DELAY = 0.01
        with pytest.raises(CommandError) as caught:
            call_command("close_cycle", "--period", "2026-10", stdout=StringIO(), stderr=StringIO())
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("close of 2026-10 failed: usage endpoint")
    assert f"{server.url}/usage" in text
    assert "SOLUSIO_USAGE_PATH" in text


@pytest.mark.django_db
def test_the_dry_run_and_the_command_count_usage_of_unknown_kinds(
    settings: Any, customers: list[Customer]
) -> None:
    with serving_recorded({"/usage": (200, recorded("unknown_kind.json"))}) as server:
        settings.SOLUSIO_API_URL = server.url
        settings.SOLUSIO_API_TOKEN = "recorded"
        with client_for(server) as client:
            dry = close.close_cycle(period=OCTOBER, client=client, now=LATER, dry_run=True)
        out = StringIO()
        call_command("close_cycle", "--period", "2026-10", "--issue", "no", stdout=out)
    assert dry.figures["unknown_kinds"] == 1
    assert Invoice.objects.get(customer_id=1).hold_reason  # the real close held it
    assert "usage rows of a kind the bridge cannot price: 1 (not billed" in out.getvalue()


@pytest.mark.django_db
def test_the_hourly_task_logs_one_line_and_does_not_retry(
    settings: Any,
    customers: list[Customer],
    caplog: pytest.LogCaptureFixture,
    close_tasks_here: Callable[[], Any],
) -> None:
    with serving_recorded({}) as server:  # every path answers 404
        settings.SOLUSIO_API_URL = server.url
        settings.SOLUSIO_API_TOKEN = "recorded"
        with (
            time_machine.travel(datetime(2026, 11, 1, 1, tzinfo=UTC), tick=False),
            close_tasks_here(),
        ):
            close_previous_period()
        assert len(server.requests) == 1  # no retry of a 404
    run = CloseRun.objects.get()
    assert run.state == CloseRunState.FAILED
    assert run.error.startswith("pulling usage failed: usage endpoint")
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "\n" not in record.getMessage()
    assert "SOLUSIO_USAGE_PATH" in record.getMessage()


def test_the_longest_kind_the_parser_keeps_fits_the_stored_column() -> None:
    assert UsageRecord._meta.get_field("item").max_length == MAX_ITEM_LENGTH


@pytest.mark.parametrize(
    ("meta", "pages"),
    [
        ({"current_page": 1, "last_page": 7, "per_page": 100}, 7),
        ({"current_page": 1}, None),  # links only: the pull follows them in one shard
        ({"current_page": 1, "last_page": "7"}, None),
        (None, None),
    ],
)
def test_the_page_count_is_read_from_meta_when_solusio_gives_it(
    meta: dict[str, Any] | None, pages: int | None
) -> None:
    answer: dict[str, Any] = {"data": [], "links": {"next": None}}
    if meta is not None:
        answer["meta"] = meta
    with serving_recorded({"/usage": (200, answer)}) as server, client_for(server) as client:
        assert client.usage_page_count(OCTOBER.start, OCTOBER.end) == pages
