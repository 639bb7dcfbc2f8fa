"""Observed metering (DESIGN §4): poll `/servers`, keep each server's intervals, one row per
change; turn a period's intervals into the usage rows the `/usage` pull stores.

A poll reads every page first and writes only when the list is complete, so a poll cut
short ends nothing. The write runs under a transaction-scoped advisory lock and skips
itself when a later poll has written already; the unique constraints on the intervals and
the conditional end (`ended_at IS NULL`) hold even without the lock.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import groupby, pairwise
from typing import Any, NamedTuple

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bridge.sql import render
from solusio.client import SolusIOClient
from solusio.connect import given_or_own
from solusio.errors import NotFound, SolusIOError
from solusio.records import Plan, Server
from usage import db
from usage.models import ObservationPoll, ObservedInterval, UsageItemKind
from usage.rules import Period, started_hours
from users.models import Customer, SolusioAccount

log = logging.getLogger(__name__)

# What makes a new interval: any of these differs from the open one (the name does not).
STATE_FIELDS = [
    "server_uuid",
    "solusio_user_id",
    "customer",
    "plan_id",
    "tokens_per_hour",
    "tokens_per_month",
    "ip_tokens_per_hour",
    "ip_tokens_per_month",
    "backups_enabled",
    "backup_price",
    "additional_ips",
    "status",
]
INTERVAL_FIELDS = ["server_id", "server_name", "plan_name", *STATE_FIELDS, "started_at"]


class ObservationError(Exception):
    """Observed usage cannot bill the period as asked (no complete poll since it ended,
    a plan without prices)."""


@dataclass
class PollSummary:
    at: datetime
    servers: int = 0
    opened: int = 0
    ended: int = 0
    skipped: bool = False  # a later poll had written already: this one's view is older


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") - (1 << 63)


def _owners() -> tuple[set[int], dict[int, int]]:
    """Known customer ids, and SolusIO user id → customer id through our sync link."""
    known = set(Customer.objects.values_list("id", flat=True))
    links: dict[int, int] = {}
    for user_id, customer_id in SolusioAccount.objects.filter(
        solusio_user_id__isnull=False
    ).values_list("solusio_user_id", "customer_id"):
        if user_id is not None:
            links[user_id] = customer_id
    return known, links


def _plans(client: SolusIOClient, servers: Sequence[Server]) -> dict[int, Plan]:
    plans = {plan.id: plan for plan in client.iter_plans()}
    # A plan hidden from the list (or added since) is asked for on its own, once.
    for plan_id in {s.plan_id for s in servers if s.plan_id is not None} - set(plans):
        try:
            plans[plan_id] = client.get_plan(plan_id)
        except NotFound:
            log.warning("observe: plan %s of a server is not in SolusIO; no prices", plan_id)
    return plans


def _state(
    server: Server, plans: dict[int, Plan], known: set[int], links: dict[int, int]
) -> tuple[Any, ...]:
    """The server's STATE_FIELDS values."""
    billing = server.owner_billing_user_id
    customer = billing if billing in known else links.get(server.user_id or -1)
    plan = plans.get(server.plan_id) if server.plan_id is not None else None
    ips = server.ips
    return (
        server.uuid,
        server.user_id,
        customer,
        server.plan_id,
        plan.tokens_per_hour if plan else None,
        plan.tokens_per_month if plan else None,
        plan.ip_tokens_per_hour if plan else None,
        plan.ip_tokens_per_month if plan else None,
        server.backups_enabled,
        plan.backup_price if plan else None,
        max(0, len(ips) - 1) if ips is not None else 0,  # the primary address is included
        server.status,
    )


def poll_servers(
    *, client: SolusIOClient | None = None, now: datetime | None = None
) -> PollSummary:
    """One observation poll: every server SolusIO lists now, compared with the open
    intervals; changes end the open row at this poll and open a new one. Raises the
    client's SolusIOError when the list cannot be read whole (then nothing is written
    but the failed poll's record)."""
    at = now or timezone.now()
    poll = ObservationPoll.objects.create(at=at)
    try:
        with given_or_own(client) as solusio:
            servers = list(solusio.iter_servers())
            plans = _plans(solusio, servers)
    except SolusIOError as exc:
        ObservationPoll.objects.filter(pk=poll.pk).update(error=str(exc)[:500])
        raise
    summary = PollSummary(at=at, servers=len(servers))
    known, links = _owners()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key("observe")])
        later = ObservationPoll.objects.filter(completed_at__isnull=False, at__gte=at)
        if later.exists():
            summary.skipped = True
            ObservationPoll.objects.filter(pk=poll.pk).update(
                error="a later poll had written already; this one's view was older"
            )
            return summary
        previous = (
            ObservationPoll.objects.filter(completed_at__isnull=False).order_by("-at").first()
        )
        open_rows = {
            row[0]: (row[1], row[2:])
            for row in ObservedInterval.objects.filter(ended_at__isnull=True).values_list(
                "server_id",
                "pk",
                *(f"{name}_id" if name == "customer" else name for name in STATE_FIELDS),
            )
        }
        to_end: list[int] = []
        to_open: list[tuple[Any, ...]] = []
        seen: set[int] = set()
        for server in servers:
            if server.id in seen:  # pages shifting under us repeat a server: once is enough
                continue
            seen.add(server.id)
            state = _state(server, plans, known, links)
            found = open_rows.get(server.id)
            if found is not None and found[1] == state:
                continue
            start = at
            if found is not None:
                to_end.append(found[0])
            elif (
                previous is not None
                and server.created_at is not None
                and previous.at < server.created_at <= at
            ):
                start = server.created_at  # born between polls: its own birth is exact
            plan = plans.get(server.plan_id) if server.plan_id is not None else None
            to_open.append((server.id, server.name, plan.name if plan else "", *state, start))
        to_end.extend(pk for sid, (pk, _) in open_rows.items() if sid not in seen)
        summary.ended = ObservedInterval.objects.filter(
            pk__in=to_end, ended_at__isnull=True, started_at__lte=at
        ).update(ended_at=at)
        db.insert(ObservedInterval, INTERVAL_FIELDS, to_open)
        summary.opened = len(to_open)
        ObservationPoll.objects.filter(pk=poll.pk).update(
            completed_at=timezone.now(),
            servers=summary.servers,
            opened=summary.opened,
            ended=summary.ended,
        )
    return summary


def last_complete_poll() -> ObservationPoll | None:
    return ObservationPoll.objects.filter(completed_at__isnull=False).order_by("-at").first()


# --- From intervals to usage rows -----------------------------------------------------------


_READ = [
    "server_id",
    "server_uuid",
    "server_name",
    "solusio_user_id",
    "customer_id",
    "plan_id",
    "plan_name",
    "tokens_per_hour",
    "tokens_per_month",
    "ip_tokens_per_hour",
    "ip_tokens_per_month",
    "additional_ips",
    "backups_enabled",
    "backup_price",
    "started_at",
    "ended_at",
]


class _Clipped(NamedTuple):
    server_id: int
    server_uuid: str
    server_name: str
    solusio_user_id: int | None
    customer_id: int | None
    plan_id: int | None
    plan_name: str
    tph: int | None
    tpm: int | None
    ip_tph: int | None
    ip_tpm: int | None
    additional_ips: int
    backups_enabled: bool | None
    backup_price: Decimal | None
    start: datetime
    end: datetime

    def same_line(self, other: _Clipped) -> bool:
        """Whether `other` continues this one's line: same owner, plan and prices, no gap
        (a change of status or backups alone makes a new interval, not a new line)."""
        return (
            other.start == self.end
            and other.customer_id == self.customer_id
            and other.solusio_user_id == self.solusio_user_id
            and other.plan_id == self.plan_id
            and (other.tph, other.tpm, other.ip_tph, other.ip_tpm)
            == (self.tph, self.tpm, self.ip_tph, self.ip_tpm)
        )


_PAGE = 20_000  # intervals per read: memory stays flat however many there are

# In (server, start) order, on the unique index; binary results (Django's text timestamp
# loader was most of the read's cost, as in `db.usage_rows`).
_SELECT_SQL = """
    SELECT {i.server_id}, {i.server_uuid}, {i.server_name}, {i.solusio_user_id},
           {i.customer}, {i.plan_id}, {i.plan_name}, {i.tokens_per_hour},
           {i.tokens_per_month}, {i.ip_tokens_per_hour}, {i.ip_tokens_per_month},
           {i.additional_ips}, {i.backups_enabled}, {i.backup_price}, {i.started_at},
           {i.ended_at}
    FROM {i}
    WHERE ({i.server_id}, {i.started_at}) > (%(server)s, %(start)s)
      AND {i.started_at} < %(upto)s
      AND ({i.ended_at} IS NULL OR {i.ended_at} > %(from)s)
      AND (%(all)s OR {i.customer} = ANY(%(customers)s))
      AND {i.server_id} >= %(lo)s AND {i.server_id} < %(hi)s
    ORDER BY {i.server_id}, {i.started_at}
"""
_PAGE_SQL = _SELECT_SQL + "    LIMIT %(limit)s\n"


_cursors = itertools.count()  # server-side cursor names: two reads may be open at once

# Every server id (a `servers` range of `observed_rows`), as far as bigint columns go.
ALL_SERVERS = (-(1 << 63), (1 << 63) - 1)


def _interval_values(
    period: Period,
    upto: datetime,
    customer_ids: Sequence[int] | None,
    servers: tuple[int, int] = ALL_SERVERS,
) -> Iterator[tuple[Any, ...]]:
    """The `_READ` values of the intervals overlapping [period.start, upto) of servers in
    [servers[0], servers[1]), by server and start.

    Inside a transaction (the close's store), one server-side cursor read `_PAGE` rows at
    a time: one plan and one pass over the index, and the connection is free for the
    caller's COPY between fetches. Outside one (previews), keyset pages: a statement
    each, on the same index. (Keyset pages cost the close a second at 155,000 intervals
    when the table's statistics were stale: each page sorted every row after it.)"""
    if not db.is_postgresql():
        qs = ObservedInterval.objects.filter(started_at__lt=upto).exclude(
            ended_at__lte=period.start
        )
        if customer_ids is not None:
            qs = qs.filter(customer_id__in=list(customer_ids))
        qs = qs.filter(server_id__gte=servers[0], server_id__lt=servers[1])
        yield from qs.order_by("server_id", "started_at").values_list(*_READ).iterator(5000)
        return
    params: dict[str, Any] = {
        "server": -(1 << 62),  # before every id and start
        "start": datetime.min.replace(tzinfo=period.start.tzinfo),
        "upto": upto,
        "from": period.start,
        "all": customer_ids is None,
        "customers": list(customer_ids or []),
        "lo": servers[0],
        "hi": servers[1],
        "limit": _PAGE,
    }
    connection.ensure_connection()
    if connection.in_atomic_block:
        with (
            connection.wrap_database_errors,
            psycopg.ServerCursor(connection.connection, f"observed_{next(_cursors)}") as named,
        ):
            named.itersize = _PAGE
            named.execute(render(_SELECT_SQL, i=ObservedInterval), params, binary=True)
            yield from named
        return
    sql = render(_PAGE_SQL, i=ObservedInterval)
    while True:
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params, binary=True)
            page = cursor.fetchall()
        yield from page
        if len(page) < _PAGE:
            return
        params["server"], params["start"] = page[-1][0], page[-1][14]


def _clipped(
    period: Period,
    upto: datetime,
    customer_ids: Sequence[int] | None,
    servers: tuple[int, int] = ALL_SERVERS,
) -> Iterator[_Clipped]:
    """The intervals overlapping [period.start, upto), clipped to it, by server and time;
    an interval still open runs to `upto`."""
    for values in _interval_values(period, upto, customer_ids, servers):
        *head, started, ended = values
        start = max(started, period.start)
        end = upto if ended is None else min(ended, upto)
        if end > start:
            yield _Clipped._make((*head, start, end))


def _runs(
    intervals: Iterable[_Clipped], ip_index: int = 0, backups: bool = False
) -> Iterator[list[_Clipped]]:
    """Consecutive intervals that make one line: a server's (ip_index 0), its
    `ip_index`-th additional IP's (only intervals with at least that many IPs), or with
    `backups` its paid backups' (only intervals with backups on, one backup price)."""
    run: list[_Clipped] = []
    for iv in intervals:
        if (ip_index and iv.additional_ips < ip_index) or (backups and not iv.backups_enabled):
            if run:
                yield run
                run = []
            continue
        if run and (
            not run[-1].same_line(iv) or (backups and iv.backup_price != run[-1].backup_price)
        ):
            yield run
            run = []
        run.append(iv)
    if run:
        yield run


def _row(run: list[_Clipped], item: str, ip_index: int, running: bool) -> tuple[Any, ...]:
    first, last = run[0], run[-1]
    is_ip = item == UsageItemKind.ADDITIONAL_IP
    is_backup = item == UsageItemKind.BACKUP
    tph, tpm = (first.ip_tph, first.ip_tpm) if is_ip else (first.tph, first.tpm)
    if tph is None or tpm is None or (is_backup and first.backup_price is None):
        what = "IP prices" if is_ip else "backup price" if is_backup else "prices"
        raise ObservationError(
            f"server {first.server_id} ({first.server_name}): plan {first.plan_id} has no "
            f"{what} in SolusIO's plan list; observed usage cannot price it"
        )
    # Rows are keyed (server, item, start); a server's second and later additional IPs
    # that start together are told apart by a microsecond each (hours come from the
    # true times below).
    key_start = first.start + timedelta(microseconds=max(0, ip_index - 1))
    return (
        first.server_id,
        item,
        key_start,
        None if running else last.end,
        first.customer_id,
        first.solusio_user_id or 0,
        first.server_uuid,
        first.server_name,
        first.plan_id or 0,
        first.plan_name,
        started_hours(first.start, last.end),  # R1 on the clipped, merged segment
        tph,
        tpm,
        first.backup_price if is_backup else None,  # R7 reads it on backup rows only
        first.customer_id,
    )


def _rows_of_one(run: list[_Clipped], running: bool) -> Iterator[tuple[Any, ...]]:
    """`observed_rows` of a server seen in one interval, as `_runs` would make them."""
    yield _row(run, UsageItemKind.SERVER, 0, running)
    for k in range(1, run[0].additional_ips + 1):
        yield _row(run, UsageItemKind.ADDITIONAL_IP, k, running)
    if run[0].backups_enabled:
        yield _row(run, UsageItemKind.BACKUP, 0, running)


def observed_rows(
    period: Period,
    *,
    upto: datetime | None = None,
    customer_ids: Sequence[int] | None = None,
    servers: tuple[int, int] = ALL_SERVERS,
) -> Iterator[tuple[Any, ...]]:
    """The period's observed usage (up to `upto`, for a month to date) as tuples in
    `usage.pull.USAGE_FIELDS` order less period, reported tokens and generation: a
    `server` row per owner-and-plan segment, an `additional_ip` row per additional IP and
    segment, a `backup` row per segment with backups on (the plan's runtime prices and
    backup price, as `/usage` gives them). Raises ObservationError for a segment without
    prices. `servers`: only servers whose id is in [servers[0], servers[1])."""
    end = period.end if upto is None else min(period.end, upto)
    running = upto is not None and end < period.end
    clipped = _clipped(period, end, customer_ids, servers)
    for _, group in groupby(clipped, key=lambda iv: iv.server_id):
        intervals = list(group)
        if len(intervals) == 1:  # most servers: one interval is each item's one run
            yield from _rows_of_one(intervals, running and intervals[0].end >= end)
            continue
        for run in _runs(intervals):
            yield _row(run, UsageItemKind.SERVER, 0, running and run[-1].end >= end)
        for k in range(1, max(iv.additional_ips for iv in intervals) + 1):
            for run in _runs(intervals, k):
                yield _row(run, UsageItemKind.ADDITIONAL_IP, k, running and run[-1].end >= end)
        for run in _runs(intervals, backups=True):
            yield _row(run, UsageItemKind.BACKUP, 0, running and run[-1].end >= end)


_CUTS_SQL = """
    SELECT {i.server_id} FROM (
        SELECT {i.server_id}, ROW_NUMBER() OVER (ORDER BY {i.server_id}) AS n
        FROM (
            SELECT DISTINCT {i.server_id} FROM {i}
            WHERE {i.started_at} < %(end)s AND ({i.ended_at} IS NULL OR {i.ended_at} > %(start)s)
        ) AS observed
    ) AS numbered
    WHERE n > 1 AND (n - 1) %% %(per)s = 0
    ORDER BY {i.server_id}
"""


def split_servers(period: Period, per_part: int) -> list[tuple[int, int]]:
    """`servers` ranges for `observed_rows` of at most `per_part` of the servers observed
    in the period each, covering every server id (one range when there are no more).
    One statement: the first id of every part after the first, numbered in id order."""
    with connection.cursor() as cursor:
        cursor.execute(
            render(_CUTS_SQL, i=ObservedInterval),
            {"end": period.end, "start": period.start, "per": per_part},
        )
        cuts = [row[0] for row in cursor.fetchall()]
    return list(pairwise([ALL_SERVERS[0], *cuts, ALL_SERVERS[1]]))


def require_complete_observation(period: Period) -> ObservationPoll:
    """The last complete poll, when it saw the end of the period; else ObservationError."""
    poll = last_complete_poll()
    if poll is None or poll.at < period.end:
        seen = f"the last complete one was at {poll.at.isoformat()}" if poll else "none so far"
        raise ObservationError(
            f"{period.label}: no complete observation poll of /servers since the period "
            f"ended ({seen}); the usage.tasks.observe_servers beat task polls every "
            f"SOLUSIO_OBSERVE_INTERVAL={settings.SOLUSIO_OBSERVE_INTERVAL} s"
        )
    return poll


def tolerance_hours() -> int:
    """Hours by which observed usage may differ from the truth: one polling interval,
    in started hours (R1)."""
    return max(1, math.ceil(settings.SOLUSIO_OBSERVE_INTERVAL / 3600))
