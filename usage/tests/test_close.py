"""The cycle close end to end: the simulator over HTTP, real PostgreSQL (DESIGN §5/§6)."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from solusio.client import SolusIOClient
from usage import cycle
from usage.close import close_cycle
from usage.models import Invoice, InvoiceCounter, InvoiceLine, InvoiceStatus, UsagePull, UsageRecord
from usage.rules import Period, parse_period, period_of_month
from usage.tests.conftest import BuildBatchHook
from users.models import Customer

# The close writes through COPY on PostgreSQL and bulk_create elsewhere (usage.db).
pytestmark = [pytest.mark.django_db, pytest.mark.both_databases]

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
AFTER = datetime(2029, 1, 1, tzinfo=UTC)  # "now" for closes: every tested period is over


def close(client: SolusIOClient, period: Period, **kw: Any) -> cycle.CloseSummary:
    kw.setdefault("now", AFTER)
    return close_cycle(period=period, client=client, **kw)


def lines_of(customer_id: int, period: Period) -> list[tuple[Any, ...]]:
    return list(
        InvoiceLine.objects.filter(invoice__customer_id=customer_id, invoice__period=period.month)
        .order_by("position")
        .values_list(
            "plan_id",
            "item",
            "hours",
            "tokens_per_hour",
            "tokens_per_month",
            "rule",
            "tokens",
            "amount",
        )
    )


def test_the_seed_examples_end_to_end(
    client: SolusIOClient, customers: list[Customer], add_server: Callable[..., Any]
) -> None:
    october = period_of_month(2026, 10, "UTC")
    add_server(1, 1, OCT, OCT + 700 * H)  # 700 h on 7/5000 → 4,900 hourly
    add_server(1, 1, OCT, OCT + 730 * H)  # 730 h → 5,110 > 5,000 → 5,000
    add_server(1, 2, OCT + 3 * 24 * H, OCT + 3 * 24 * H + timedelta(minutes=5))  # 5 min → 1 h
    add_server(2, 5, OCT - 24 * H)  # tpm = 0: 744 h × 10, no cap
    add_server(2, 6, OCT + 10 * 24 * H, OCT + 10 * 24 * H + timedelta(minutes=5))  # tph = 0
    add_server(2, 7, OCT)  # free: a zero line
    add_server(3, 1, OCT - 24 * H, None, [(OCT + 400 * H, 2)])  # resized: 400 h + 344 h
    add_server(3, 4, OCT - 24 * H, ip=True)  # a whole month on 28/20000 with an IP

    summary = close(client, october, auto_issue=False)

    assert lines_of(1, october) == [
        (1, "server", 700, 7, 5000, "hourly", 4900, Decimal("4.9000")),
        (1, "server", 730, 7, 5000, "monthly_cap", 5000, Decimal("5.0000")),
        (2, "server", 1, 14, 10000, "hourly", 14, Decimal("0.0100")),
    ]
    assert lines_of(2, october) == [
        (5, "server", 744, 10, 0, "hourly", 7440, Decimal("7.4400")),
        (6, "server", 1, 0, 3000, "fixed_monthly", 3000, Decimal("3.0000")),
        (7, "server", 744, 0, 0, "free", 0, Decimal("0.0000")),
    ]
    assert lines_of(3, october) == [
        (1, "server", 400, 7, 5000, "hourly", 2800, Decimal("2.8000")),
        (2, "server", 344, 14, 10000, "hourly", 4816, Decimal("4.8200")),
        (4, "server", 744, 28, 20000, "monthly_cap", 20000, Decimal("20.0000")),
        (4, "additional_ip", 744, 1, 500, "monthly_cap", 500, Decimal("0.5000")),
    ]
    totals = dict(Invoice.objects.values_list("customer_id", "total"))
    assert totals == {1: Decimal("9.91"), 2: Decimal("10.44"), 3: Decimal("28.12")}
    assert all(i.status == InvoiceStatus.DRAFT and i.number is None for i in Invoice.objects.all())
    assert summary.rows == 10  # 8 servers, one resized (2 rows), one IP
    assert summary.created == 3
    assert summary.figures["lines"] == 10
    assert summary.figures["per_currency"]["USD"]["tokens"] == 9914 + 10440 + 28116


@pytest.mark.parametrize(
    ("year", "month", "days"), [(2026, 2, 28), (2028, 2, 29), (2026, 11, 30), (2026, 10, 31)]
)
def test_months_of_every_length_bill_their_own_hours(
    client: SolusIOClient,
    customers: list[Customer],
    add_server: Callable[..., Any],
    year: int,
    month: int,
    days: int,
) -> None:
    period = period_of_month(year, month, "UTC")
    add_server(1, 5, period.start - 24 * H)  # hourly only: the hours show through
    add_server(1, 1, period.start - 24 * H)  # capped: 7 × 24 × days ≥ 4,704 ... 5,208
    close(client, period)
    hourly, capped = lines_of(1, period)
    assert hourly[2] == days * 24
    assert hourly[6] == days * 24 * 10
    # 28 and 29 days (4,704 and 4,872 tokens) stay under the 5,000 cap; 30 and 31 reach it.
    assert capped[6] == min(days * 24 * 7, 5000)
    assert capped[5] == ("hourly" if days <= 29 else "monthly_cap")


@pytest.mark.parametrize(
    ("month", "hours"),
    [(3, 743), (10, 745)],  # DST starts 29 March, ends 25 October 2026
)
def test_a_dst_change_in_the_billing_zone_shortens_or_lengthens_the_month(
    client: SolusIOClient,
    customers: list[Customer],
    add_server: Callable[..., Any],
    settings: Any,
    month: int,
    hours: int,
) -> None:
    settings.BILLING_TIMEZONE = "Europe/Berlin"
    period = parse_period(f"2026-{month:02d}", "Europe/Berlin")
    assert period.start.hour in (22, 23)  # local midnight in UTC
    assert (period.end - period.start) == hours * H
    add_server(1, 5, period.start - 24 * H)
    close(client, period)
    [line] = lines_of(1, period)
    assert line[2] == hours
    assert line[6] == hours * 10


def test_a_period_boundary_one_second_either_side(
    client: SolusIOClient, customers: list[Customer], add_server: Callable[..., Any]
) -> None:
    october = period_of_month(2026, 10, "UTC")
    s = timedelta(seconds=1)
    add_server(1, 5, OCT - 2 * H, OCT - s)  # ends 1 s before: September only
    add_server(1, 5, OCT - 2 * H, OCT)  # ends at the start: September only (half-open)
    add_server(1, 5, OCT - 2 * H, OCT + s)  # 1 s inside: one started hour in October
    add_server(2, 5, NOV - s, NOV + 2 * H)  # starts 1 s before the end: one hour in October
    add_server(2, 5, NOV, NOV + 2 * H)  # starts at the end: November only
    close(client, october)
    assert [line[2] for line in lines_of(1, october)] == [1]
    assert [line[2] for line in lines_of(2, october)] == [1]
    assert UsageRecord.objects.count() == 2


def _state() -> list[tuple[Any, ...]]:
    """Everything a close decides, without ids and clock times."""
    invoices = Invoice.objects.order_by("customer_id").values_list(
        "customer_id",
        "period",
        "status",
        "number",
        "currency",
        "tokens",
        "subtotal",
        "tax_total",
        "total",
        "snapshot",
        "taxes",
        "discrepancies",
        "fingerprint",
    )
    lines = InvoiceLine.objects.order_by("invoice__customer_id", "position").values_list(
        "invoice__customer_id",
        "position",
        "server_id",
        "item",
        "hours",
        "rule",
        "tokens",
        "amount",
    )
    usage = UsageRecord.objects.order_by("server_id", "item", "started_at").values_list(
        "server_id", "item", "started_at", "customer_id", "hours"
    )
    return [*invoices, *lines, *usage]


@pytest.fixture
def october_usage(customers: list[Customer], add_server: Callable[..., Any]) -> Period:
    for user in (1, 2, 3, 4):
        add_server(user, 1, OCT - 24 * H)
        add_server(user, 5, OCT + 24 * H * user, OCT + 24 * H * user + 30 * H)
    return period_of_month(2026, 10, "UTC")


def test_a_rerun_changes_nothing(client: SolusIOClient, october_usage: Period) -> None:
    first = close(client, october_usage, auto_issue=True)
    before = _state()
    ids = sorted(Invoice.objects.values_list("id", flat=True))
    again = close(client, october_usage, auto_issue=True)
    assert _state() == before
    assert sorted(Invoice.objects.values_list("id", flat=True)) == ids
    assert (first.created, first.issued) == (3, 3)
    assert (again.created, again.updated, again.frozen, again.issued) == (0, 0, 3, 0)
    assert list(Invoice.objects.order_by("number").values_list("number", flat=True)) == [1, 2, 3]


def test_a_close_killed_mid_build_then_rerun_ends_as_one_clean_run(
    client: SolusIOClient, october_usage: Period, after_build_batch: BuildBatchHook, settings: Any
) -> None:
    close(client, october_usage, auto_issue=True)
    clean = _state()
    Invoice.objects.all().delete()
    UsageRecord.objects.all().delete()
    UsagePull.objects.all().delete()
    InvoiceCounter.objects.update(last=0)

    class Killed(BaseException):  # not an Exception: nothing on the way catches it
        pass

    def die(done: int) -> None:
        raise Killed

    settings.CLOSE_BUILD_BATCH = 1
    after_build_batch(die)
    with pytest.raises(Killed):
        close(client, october_usage, auto_issue=True)
    assert Invoice.objects.count() == 1  # one batch committed, then the "kill"
    after_build_batch(None)
    close(client, october_usage, auto_issue=True)
    assert _state() == clean


def test_an_orphan_is_kept_and_counted(client: SolusIOClient, october_usage: Period) -> None:
    summary = close(client, october_usage)
    orphans = UsageRecord.objects.filter(customer__isnull=True)
    assert {r.billing_user_id for r in orphans} == {4}
    assert orphans.count() == 2
    assert summary.orphans == 2
    assert summary.figures["orphans"] == 2
    assert not Invoice.objects.filter(customer_id=4).exists()


def test_solusio_tokens_that_differ_are_flagged_and_held(
    sim: Any, client: SolusIOClient, october_usage: Period
) -> None:
    sim.control.simulator.state.config = sim.control.simulator.state.config.__class__(
        **{**sim.control.simulator.state.config.as_dict(), "tokens_mismatch_rate": 1.0}
    )
    summary = close(client, october_usage, auto_issue=True)
    flagged = InvoiceLine.objects.filter(discrepancy=True)
    # The simulator leaves `tokens` out on some rows; every row that has it disagrees.
    assert flagged.exists()
    assert all(line.reported_tokens == line.tokens + 1 for line in flagged)
    held = Invoice.objects.filter(discrepancies__gt=0)
    assert held.exists()
    assert all(i.status == InvoiceStatus.DRAFT for i in held)
    assert summary.held == held.count()
    assert summary.figures["discrepancies"] == flagged.count()


def test_a_customer_scoped_close_builds_only_that_invoice(
    client: SolusIOClient, october_usage: Period
) -> None:
    close(client, october_usage, customer_id=2)
    assert list(Invoice.objects.values_list("customer_id", flat=True)) == [2]
    assert UsageRecord.objects.count() == 8  # the pull itself is the whole period


def test_a_dry_run_stores_nothing_and_reports_the_same_figures(
    client: SolusIOClient, october_usage: Period
) -> None:
    dry = close(client, october_usage, dry_run=True)
    assert not Invoice.objects.exists()
    assert not UsageRecord.objects.exists()
    real = close(client, october_usage, auto_issue=False)
    for key in ("customers", "lines", "orphans", "discrepancies", "per_currency"):
        assert dry.figures[key] == real.figures[key], key


def test_a_period_that_is_not_over_is_refused(client: SolusIOClient, customers: Any) -> None:
    with pytest.raises(cycle.CloseError, match="not over"):
        close(client, period_of_month(2026, 10, "UTC"), now=datetime(2026, 10, 31, tzinfo=UTC))


def test_changed_prices_rewrite_drafts_but_never_issued_invoices(
    client: SolusIOClient, october_usage: Period
) -> None:
    close(client, october_usage)
    Invoice.objects.filter(customer_id=1).update(status=InvoiceStatus.PAID, number=1)
    frozen = Invoice.objects.get(customer_id=1)
    Customer.objects.get(pk=1).currency.__class__.objects.update(token_price=Decimal("0.002"))
    summary = close(client, october_usage)
    assert (summary.frozen, summary.updated) == (1, 2)
    assert Invoice.objects.get(customer_id=1).total == frozen.total
    assert (
        Invoice.objects.get(customer_id=2).total == 2 * frozen.total
    )  # every customer ran the same hours


def test_a_draft_whose_usage_became_orphan_is_removed(
    sim: Any, client: SolusIOClient, october_usage: Period
) -> None:
    close(client, october_usage)
    sim.control.simulator.state.users[3]["billing_user_id"] = 99  # relinked in SolusIO
    summary = close(client, october_usage)
    assert summary.removed == 1
    assert list(Invoice.objects.order_by("customer_id").values_list("customer_id", flat=True)) == [
        1,
        2,
    ]
    assert UsageRecord.objects.filter(billing_user_id=99, customer__isnull=True).count() == 2
