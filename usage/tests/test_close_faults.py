"""The close under failure: SolusIO failing mid-pull, and two closes at once."""

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from solusio.client import SolusIOClient
from solusio.errors import ServerError
from solusio.testing import SimulatorInfo, fast_client
from usage import build, close, cycle, invoice_states, pull
from usage.models import Invoice, InvoiceStatus, UsagePull, UsageRecord
from usage.rules import Period, period_of_month
from users.models import Customer

OCT = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
AFTER = datetime(2029, 1, 1, tzinfo=UTC)


class FailsMidPull(SolusIOClient):
    """Arms `count` faults on /usage just before asking for page `at`."""

    def __init__(self, info: SimulatorInfo, at: int, count: int, **kw: Any) -> None:
        client = fast_client(info, per_page=2)
        super().__init__(
            info.url, info.token, verify_tls=False, retry=client.retry, per_page=2, **kw
        )
        client.close()
        self.control, self.at, self.count, self.pages = info.control, at, count, 0

    def _request(self, method: str, path: str, **kw: Any) -> Any:
        if path == "/usage":
            self.pages += 1
            if self.pages == self.at:
                self.control.fail_next("error", self.count, path="/usage", status=503)
        return super()._request(method, path, **kw)


@pytest.fixture
def usage_for_three(customers: list[Customer], add_server: Callable[..., Any]) -> Period:
    for user in (1, 2, 3):
        for plan in (1, 2, 5):
            add_server(user, plan, OCT - 24 * H)
    return period_of_month(2026, 10, "UTC")


@pytest.mark.django_db
def test_a_transient_failure_mid_pull_is_retried_and_the_close_completes(
    sim: SimulatorInfo, usage_for_three: Period
) -> None:
    with FailsMidPull(sim, at=4, count=2) as client:  # page 2 (after the page count)
        summary = close.close_cycle(period=usage_for_three, client=client, now=AFTER)
    assert summary.rows == 9
    assert Invoice.objects.count() == 3
    failed = [c for c in sim.control.calls(path="/usage") if c["status"] == 503]
    assert len(failed) == 2


@pytest.mark.django_db
@pytest.mark.both_databases
def test_solusio_failing_for_good_mid_pull_builds_and_issues_nothing(
    sim: SimulatorInfo, usage_for_three: Period, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull, "PULL_BATCH", 2)  # store page by page
    # The third page (after the page count and two pages) fails for good.
    with FailsMidPull(sim, at=4, count=50) as client, pytest.raises(ServerError):
        close.close_cycle(period=usage_for_three, client=client, now=AFTER, auto_issue=True)
    assert not Invoice.objects.exists()
    assert UsageRecord.objects.count() == 4  # two pages were stored before the failure
    assert UsagePull.objects.get().completed_at is None
    # Nor can a build run by itself from the partial pull.
    with pytest.raises(cycle.CloseError, match="no complete usage pull"):
        build.build_invoices(period=usage_for_three, summary=cycle.CloseSummary("2026-10", False))
    sim.control.clear_faults()
    with fast_client(sim) as client:
        close.close_cycle(period=usage_for_three, client=client, now=AFTER, auto_issue=True)
    assert Invoice.objects.filter(status=InvoiceStatus.ISSUED).count() == 3
    assert UsageRecord.objects.count() == 9


@pytest.mark.django_db(transaction=True)
def test_two_closes_started_at_once_end_as_one(sim: SimulatorInfo, usage_for_three: Period) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait()
            with fast_client(sim) as client:
                close.close_cycle(period=usage_for_three, client=client, now=AFTER, auto_issue=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert Invoice.objects.count() == 3
    assert list(Invoice.objects.order_by("number").values_list("number", flat=True)) == [1, 2, 3]
    assert UsageRecord.objects.count() == 9


@pytest.mark.django_db(transaction=True)
def test_concurrent_issues_take_gap_free_unique_numbers(
    sim: SimulatorInfo, usage_for_three: Period, usd: Any
) -> None:
    for i in range(4, 24):
        Customer.objects.create(id=i, email=f"c{i}@example.test", currency=usd)
    with fast_client(sim) as client:
        close.close_cycle(period=usage_for_three, client=client, now=AFTER, auto_issue=False)
    ids = list(Invoice.objects.values_list("id", flat=True))
    errors: list[BaseException] = []

    def issue(invoice_id: int) -> None:
        try:
            invoice_states.issue_invoices(invoice_ids=[invoice_id])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=issue, args=(i,)) for i in ids * 2]  # each one twice
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert list(Invoice.objects.order_by("number").values_list("number", flat=True)) == list(
        range(1, len(ids) + 1)
    )


class RepeatsRows(SolusIOClient):
    """SolusIO repeating rows, within a page and across pages (data shifting while paged)."""

    def iter_usage_items(self, date_from: datetime, date_to: datetime, **pages: Any) -> Any:
        rows = list(super().iter_usage_items(date_from, date_to, **pages))
        for row in rows:
            yield row
            yield row
        yield rows[0]


@pytest.mark.django_db
@pytest.mark.both_databases
def test_rows_solusio_repeats_are_stored_once(
    sim: SimulatorInfo, usage_for_three: Period, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fast_client(sim) as client:
        close.close_cycle(period=usage_for_three, client=client, now=AFTER)
    clean = list(Invoice.objects.order_by("customer_id").values_list("customer_id", "total"))
    Invoice.objects.all().delete()
    UsageRecord.objects.all().delete()
    UsagePull.objects.all().delete()
    monkeypatch.setattr(pull, "PULL_BATCH", 4)  # the repeat of row 1 lands in a later batch
    with RepeatsRows(sim.url, sim.token, verify_tls=False) as client:
        close.close_cycle(period=usage_for_three, client=client, now=AFTER)
    assert UsageRecord.objects.count() == 9
    assert list(Invoice.objects.order_by("customer_id").values_list("customer_id", "total")) == (
        clean
    )
