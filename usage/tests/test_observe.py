"""Observed metering: polls of `/servers` against the simulator, one row per change, and
closes billed from observed usage, from `/usage` checked against it, and falling back."""

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client

from pricing.tests.api_helpers import make_user
from solusio.client import SolusIOClient
from solusio.errors import ServerError
from solusio.testing import SimulatorInfo, fast_client
from solusio.usage_schema import UsageEndpointUnusable
from usage import close, db, observe, pull, selectors
from usage.cycle import CloseError
from usage.models import (
    CloseRun,
    CloseShardStage,
    Invoice,
    InvoiceStatus,
    ObservationPoll,
    ObservedInterval,
    UsagePull,
    UsageRecord,
    UsageSourceGap,
)
from usage.rules import charge, period_of_month
from users.models import Customer

pytestmark = pytest.mark.django_db

OCT = datetime(2026, 10, 1, tzinfo=UTC)
OCTOBER = period_of_month(2026, 10, "UTC")
AFTER = datetime(2029, 1, 1, tzinfo=UTC)


def at(days: float, minutes: int = 0) -> datetime:
    return OCT + timedelta(days=days, minutes=minutes)


class Poller:
    def __init__(self, sim: SimulatorInfo, client: SolusIOClient) -> None:
        self.sim, self.client = sim, client

    def __call__(self, when: datetime) -> observe.PollSummary:
        self.sim.control.set_clock(int(when.timestamp()))
        return observe.poll_servers(client=self.client, now=when)


@pytest.fixture
def poll(sim: SimulatorInfo, client: SolusIOClient) -> Poller:
    return Poller(sim, client)


@pytest.fixture
def october(
    poll: Poller,
    sim: SimulatorInfo,
    customers: list[Customer],
    add_server: Callable[..., dict[str, Any]],
) -> dict[str, int]:
    """Server a (customer 1, plan 1) all October, stopped on the 3rd; server b (customer 2,
    plan 2, an additional IP) from the 2nd to the 5th; polls around both, and one after
    the month."""
    a = add_server(1, 1, OCT - timedelta(days=1))["id"]
    b = add_server(2, 2, at(1), at(4), ip=True)["id"]
    poll(at(-0.5))
    poll(at(1, 10))  # b born at 00:00 of the 2nd: after the last poll, so its birth is exact
    poll(at(1.5))  # nothing changed: nothing written
    sim.control.change_servers([a], status="stopped")
    poll(at(2))
    poll(at(4, 5))  # b is gone: ended at this poll (5 minutes late at most one interval)
    poll(at(31, 5))
    return {"a": a, "b": b}


def test_one_row_per_change_not_per_poll(october: dict[str, int]) -> None:
    a, b = october["a"], october["b"]
    rows = list(
        ObservedInterval.objects.order_by("server_id", "started_at").values_list(
            "server_id", "status", "started_at", "ended_at", "customer_id", "additional_ips"
        )
    )
    assert rows == [
        (a, "started", at(-0.5), at(2), 1, 0),
        (a, "stopped", at(2), None, 1, 0),
        (b, "started", at(1), at(4, 5), 2, 1),
    ]
    assert ObservationPoll.objects.filter(completed_at__isnull=False).count() == 6
    assert list(ObservationPoll.objects.order_by("at").values_list("opened", "ended")) == [
        (1, 0),
        (1, 0),
        (0, 0),
        (1, 1),
        (0, 1),
        (0, 0),
    ]


def test_a_poll_cut_short_ends_nothing(
    october: dict[str, int], sim: SimulatorInfo, poll: Poller
) -> None:
    before = list(ObservedInterval.objects.values_list("pk", "ended_at"))
    sim.control.fail_next("error", 10, path="/servers", status=503)
    with pytest.raises(ServerError):
        poll(at(40))
    assert list(ObservedInterval.objects.values_list("pk", "ended_at")) == before
    failed = ObservationPoll.objects.get(at=at(40))
    assert failed.completed_at is None
    assert "503" in failed.error


def test_polls_are_idempotent_and_constrained(october: dict[str, int], poll: Poller) -> None:
    count = ObservedInterval.objects.count()
    again = poll(at(31, 5))  # the same poll twice (a retried task, a second beat)
    assert again.skipped
    assert ObservedInterval.objects.count() == count
    older = poll(at(20))  # a slow poll whose view is older than one already written
    assert older.skipped
    assert ObservedInterval.objects.count() == count
    row = ObservedInterval.objects.get(server_id=october["a"], ended_at__isnull=True)
    with pytest.raises(IntegrityError), transaction.atomic():  # a second open row
        ObservedInterval.objects.create(
            server_id=row.server_id, server_uuid="x", status="started", started_at=at(30)
        )


def _lines(customer: int) -> list[tuple[str, int, int, bool]]:
    invoice = Invoice.objects.get(customer_id=customer, period=OCTOBER.month)
    return list(invoice.lines.values_list("item", "hours", "tokens", "discrepancy"))


def test_close_from_observed_usage(
    october: dict[str, int], client: SolusIOClient, settings: Any
) -> None:
    settings.USAGE_SOURCE = "observed"
    summary = close.close_cycle(period=OCTOBER, client=client, now=AFTER, auto_issue=False)
    assert summary.source == "observed"
    # a: the whole month, one line although its status changed (7/5000 → capped).
    assert _lines(1) == [("server", 744, 5000, False)]
    # b: 00:00 on the 2nd to the poll at 00:05 on the 5th: 72 h 5 min → 73 h (R1).
    assert _lines(2) == [
        ("server", 73, charge(73, 14, 10000).tokens, False),
        ("additional_ip", 73, charge(73, 1, 500).tokens, False),
    ]
    assert UsagePull.objects.get(period=OCTOBER.month).source == "observed"


def test_observed_usage_stored_in_server_shards_bills_the_same(
    october: dict[str, int], client: SolusIOClient, settings: Any
) -> None:
    settings.USAGE_SOURCE = "observed"
    close.close_cycle(period=OCTOBER, client=client, now=AFTER, auto_issue=False)
    whole = sorted(UsageRecord.objects.values_list("server_id", "item", "hours", "customer"))
    lines = [_lines(1), _lines(2)]
    settings.CLOSE_PULL_SERVERS = 1  # a pull shard per server
    summary = close.close_cycle(period=OCTOBER, client=client, now=AFTER, auto_issue=False)
    run = CloseRun.objects.latest("id")
    parts = run.shards.filter(stage=CloseShardStage.PULL).order_by("index")
    servers = sorted({server for server, *_ in whole})
    assert parts.count() == len(servers) > 1
    assert [p.rows for p in parts] == [
        sum(1 for row in whole if row[0] == server) for server in servers
    ]
    assert parts[0].part == f"servers –{servers[1] - 1}"
    assert summary.rows == len(whole)
    assert sorted(UsageRecord.objects.values_list("server_id", "item", "hours", "customer")) == (
        whole
    )
    assert [_lines(1), _lines(2)] == lines


def test_observed_close_needs_a_poll_after_the_period(
    poll: Poller, client: SolusIOClient, customers: list[Customer], settings: Any
) -> None:
    settings.USAGE_SOURCE = "observed"
    poll(at(10))
    with pytest.raises(CloseError, match="no complete observation poll of /servers"):
        close.close_cycle(period=OCTOBER, client=client, now=AFTER)


def test_both_flags_hours_beyond_one_interval_and_lists_one_source_servers(
    october: dict[str, int],
    client: SolusIOClient,
    settings: Any,
    add_server: Callable[..., dict[str, Any]],
) -> None:
    settings.USAGE_SOURCE = "both"
    # Lived 2 h between two polls: /usage bills it, no poll saw it.
    unseen = add_server(3, 1, at(9, 60), at(9, 180))["id"]
    # Observed, but /usage never reports it.
    ObservedInterval.objects.create(
        server_id=777, server_uuid="u", server_name="ghost", customer_id=1, plan_id=1,
        tokens_per_hour=7, tokens_per_month=5000, status="started",
        started_at=at(20), ended_at=at(21),
    )  # fmt: skip
    summary = close.close_cycle(period=OCTOBER, client=client, now=AFTER, auto_issue=True)
    assert summary.source == "usage_api"
    # b: /usage says 72 h, observed 73 h: within one polling interval, not flagged.
    assert [line[3] for line in _lines(2)] == [False, False]
    assert _lines(3) == [("server", 2, 14, True)]
    assert Invoice.objects.get(customer_id=3).discrepancies == 1
    # Customer 1's a agrees; the ghost's 24 observed hours have no /usage line.
    assert Invoice.objects.get(customer_id=2).status == InvoiceStatus.ISSUED
    assert Invoice.objects.get(customer_id=3).status == InvoiceStatus.DRAFT
    gaps = set(UsageSourceGap.objects.values_list("server_id", "item", "seen_by", "hours"))
    assert gaps == {(unseen, "server", "usage_api", 2), (777, "server", "observed", 24)}


def test_both_falls_back_to_observed_when_usage_is_unusable(
    october: dict[str, int], client: SolusIOClient, sim: SimulatorInfo, settings: Any
) -> None:
    settings.USAGE_SOURCE = "both"
    sim.control.fail_next("error", 1, path="/usage", status=404)
    summary = close.close_cycle(period=OCTOBER, client=client, now=AFTER, auto_issue=True)
    assert summary.source == "observed"
    assert f"{client.base_url}/usage is unusable" in summary.fallback_reason
    assert "USAGE_SOURCE" in summary.fallback_reason
    assert summary.issued == 0
    assert summary.held == 2
    for invoice in Invoice.objects.all():
        assert invoice.status == InvoiceStatus.DRAFT
        assert invoice.hold_reason.startswith("Built from observed usage")
    assert _lines(1) == [("server", 744, 5000, False)]
    # /usage answers again: the re-close bills it, and the fallback's reason is gone.
    summary = close.close_cycle(period=OCTOBER, client=client, now=AFTER, auto_issue=False)
    assert summary.source == "usage_api"
    assert set(Invoice.objects.values_list("hold_reason", flat=True)) == {""}


def test_usage_api_source_names_the_url_and_the_setting(
    october: dict[str, int], client: SolusIOClient, sim: SimulatorInfo, settings: Any
) -> None:
    settings.USAGE_SOURCE = "usage_api"
    sim.control.fail_next("error", 1, path="/usage", status=405)
    with pytest.raises(UsageEndpointUnusable) as raised:
        close.close_cycle(period=OCTOBER, client=client, now=AFTER)
    message = str(raised.value)
    assert "\n" not in message
    assert f"{client.base_url}/usage is unusable" in message
    assert "USAGE_SOURCE=" in message
    assert not Invoice.objects.exists()


def test_month_to_date_preview_from_observed_usage(october: dict[str, int], settings: Any) -> None:
    settings.USAGE_SOURCE = "observed"
    preview = selectors.preview_invoice(customer_id=1, now=at(10))
    assert preview.draft is not None
    [line] = preview.draft.lines
    # a from the 1st to now (the 11th, 00:00), still running: 240 h at 7 tokens.
    assert (line.usage.item, line.charge.hours, line.charge.tokens) == ("server", 240, 1680)
    assert line.usage.ended_at is None
    assert selectors.preview_invoice(customer_id=3, now=at(10)).draft is None


def test_staff_see_a_customers_observed_servers_with_the_view_permission(
    october: dict[str, int], customers: list[Customer]
) -> None:
    viewer, nobody = Client(), Client()
    viewer.force_login(make_user("observer", models=[ObservedInterval, Customer], actions=["view"]))
    nobody.force_login(make_user("nobody", models=[Customer], actions=["view"]))
    page = viewer.get("/admin/usage/observedinterval/?customer=1")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 2  # a's two states
    assert viewer.post("/admin/usage/observedinterval/add/", {}).status_code == 403
    assert nobody.get("/admin/usage/observedinterval/?customer=1").status_code == 403
    refused = viewer.get("/admin/usage/observedinterval/?customer=x")  # a bad id: not a 500
    assert refused.status_code == 302
    assert refused["Location"].endswith("?e=1")
    shown = viewer.get("/admin/users/customer/2/change/").content.decode()
    assert f"#{october['b']}" not in shown  # b has ended: no open interval
    assert "/admin/usage/observedinterval/?customer=2" in shown
    shown = viewer.get("/admin/users/customer/1/change/").content.decode()
    assert f"#{october['a']}" in shown
    assert "Observed servers" not in nobody.get("/admin/users/customer/1/change/").content.decode()


def test_intervals_are_read_in_pages_with_the_same_result(
    october: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = list(observe.observed_rows(OCTOBER))
    monkeypatch.setattr(observe, "_PAGE", 1)
    assert list(observe.observed_rows(OCTOBER)) == whole
    assert list(observe.observed_rows(OCTOBER, customer_ids=[2])) == [
        row for row in whole if row[-1] == 2
    ]
    assert len(whole) == 3


@pytest.mark.django_db(transaction=True)
def test_observed_usage_is_the_same_however_read_and_stored(
    october: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(observe, "_PAGE", 1)
    pages = list(observe.observed_rows(OCTOBER))  # no transaction open: keyset pages
    with transaction.atomic():  # the close's store: one server-side cursor
        assert list(observe.observed_rows(OCTOBER)) == pages
        both = zip(observe.observed_rows(OCTOBER), observe.observed_rows(OCTOBER), strict=True)
        assert list(both) == list(zip(pages, pages, strict=True))  # two cursors at once
    servers = sorted({row[0] for row in pages})
    parts = observe.split_servers(OCTOBER, 1)
    assert len(parts) == len(servers) > 1  # a part each
    assert [row for h in parts for row in observe.observed_rows(OCTOBER, servers=h)] == pages
    assert observe.split_servers(OCTOBER, len(servers)) == [observe.ALL_SERVERS]

    with db.period_lock(OCTOBER):
        stored = pull.store_observed_usage(period=OCTOBER)
        assert pull.store_observed_usage(period=OCTOBER) == stored  # a re-close: upserts
    assert stored == (len(pages), 0)
    assert sorted(
        UsageRecord.objects.values_list("server_id", "item", "started_at", "hours", "customer")
    ) == sorted((r[0], r[1], r[2], r[10], r[14]) for r in pages)
    assert selectors.completed_pull(OCTOBER) is not None


@pytest.mark.django_db(transaction=True)
def test_two_polls_at_once_record_each_change_once(
    sim: SimulatorInfo, customers: list[Customer], add_server: Callable[..., dict[str, Any]]
) -> None:
    a = add_server(1, 1, OCT)["id"]
    add_server(2, 2, OCT)
    with fast_client(sim) as client:
        Poller(sim, client)(at(1))
    sim.control.change_servers([a], backups=True)
    sim.control.set_clock(int(at(2).timestamp()))
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(when: datetime) -> None:
        try:
            barrier.wait()
            with fast_client(sim) as client:
                observe.poll_servers(client=client, now=when)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(w,)) for w in (at(2), at(2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert ObservedInterval.objects.filter(ended_at__isnull=True).count() == 2
    assert list(
        ObservedInterval.objects.filter(server_id=a)
        .order_by("started_at")
        .values_list("backups_enabled", flat=True)
    ) == [False, True]


@pytest.fixture
def backups(
    poll: Poller,
    sim: SimulatorInfo,
    customers: list[Customer],
    add_server: Callable[..., dict[str, Any]],
) -> dict[str, int]:
    """Plan 1 (7/5000, backups at 10 %): server a (customer 1) with backups on all October,
    server c (customer 3) with backups on from the 3rd to the 11th; server b (customer 2,
    plan 2) without backups."""
    a = add_server(1, 1, OCT - timedelta(days=1))["id"]
    b = add_server(2, 2, OCT - timedelta(days=1))["id"]
    c = add_server(3, 1, OCT - timedelta(days=1))["id"]

    def switch(server: int, on: bool, when: datetime) -> None:  # at that time, as staff would
        sim.control.set_clock(int(when.timestamp()))
        sim.control.change_servers([server], backups=on)

    switch(a, True, at(-1))
    poll(at(-0.5))
    switch(c, True, at(2))
    poll(at(2))
    switch(c, False, at(10))
    poll(at(10))
    poll(at(31, 5))
    return {"a": a, "b": b, "c": c}


def test_observed_backups_are_billed_by_r7(
    backups: dict[str, int], client: SolusIOClient, settings: Any
) -> None:
    a, c = backups["a"], backups["c"]
    assert list(
        ObservedInterval.objects.filter(server_id=c)
        .order_by("started_at")
        .values_list("backups_enabled", "backup_price")
    ) == [(False, 10), (True, 10), (False, 10)]
    rows = {(row[0], row[1]): row for row in observe.observed_rows(OCTOBER)}
    assert rows[(a, "backup")][10:] == (744, 7, 5000, 10, 1)
    assert rows[(a, "server")][13] is None  # the backup price rides on backup rows only
    settings.USAGE_SOURCE = "observed"
    close.close_cycle(period=OCTOBER, client=client, now=AFTER, auto_issue=False)
    # a: 744 h capped at 5000 tokens, backups 10 % of that.
    assert sorted(_lines(1)) == [("backup", 744, 500, False), ("server", 744, 5000, False)]
    # c: one server line although backups changed; backups from the 3rd to the 11th:
    # 192 h × 7 = 1344 tokens, 10 % = 134.4 → 134 (R7 rounds half up).
    assert sorted(_lines(3)) == [("backup", 192, 134, False), ("server", 744, 5000, False)]
    # b: backups off, no backup line.
    assert [line[0] for line in _lines(2)] == ["server"]


def test_observed_backups_without_a_backup_price_cannot_be_priced(
    backups: dict[str, int],
) -> None:
    ObservedInterval.objects.filter(server_id=backups["a"]).update(backup_price=None)
    with pytest.raises(observe.ObservationError, match="has no backup price"):
        list(observe.observed_rows(OCTOBER))


def test_both_compares_backup_hours_with_usage(
    backups: dict[str, int], client: SolusIOClient, settings: Any
) -> None:
    settings.USAGE_SOURCE = "both"
    summary = close.close_cycle(period=OCTOBER, client=client, now=AFTER, auto_issue=False)
    assert summary.source == "usage_api"
    # /usage's backup row for a (the whole month) agrees with the observed one.
    assert sorted(_lines(1)) == [("backup", 744, 500, False), ("server", 744, 5000, False)]
    assert Invoice.objects.get(customer_id=1).discrepancies == 0
    # c: /usage bills backups from the switch on to the switch off, as observed.
    assert sorted(_lines(3)) == [("backup", 192, 134, False), ("server", 744, 5000, False)]
    assert Invoice.objects.get(customer_id=3).discrepancies == 0
    assert not UsageSourceGap.objects.exists()
    # A backup line observation disagrees with is flagged: a's backups never observed.
    ObservedInterval.objects.filter(server_id=backups["a"]).update(backups_enabled=False)
    # Backups observed that SolusIO does not bill (b) have no line to flag: listed.
    ObservedInterval.objects.filter(server_id=backups["b"]).update(
        backups_enabled=True, backup_price=10
    )
    Invoice.objects.all().delete()
    close.close_cycle(period=OCTOBER, client=client, now=AFTER, auto_issue=False)
    assert sorted(_lines(1)) == [("backup", 744, 500, True), ("server", 744, 5000, False)]
    assert set(UsageSourceGap.objects.values_list("server_id", "item", "seen_by", "hours")) == {
        (backups["a"], "backup", "usage_api", 744),
        (backups["b"], "backup", "observed", 744),
    }
