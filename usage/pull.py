"""Pull and store: every page of SolusIO's `/usage` for a period, stored in batches.

One upsert per batch keyed (period, server, item, start), so a row pulled twice is one
row. A pull that SolusIO cuts short (after the client's own retries) raises and leaves the
period's pull incomplete: nothing is built from it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from solusio.client import SolusIOClient
from solusio.connect import given_or_own
from solusio.usage_schema import UsageRow, parse_usage_row
from usage import db, observe, selectors
from usage.cycle import Progress, no_progress
from usage.models import UsagePull, UsageRecord
from usage.prefetch import batched, prefetched
from usage.rules import Period, period_containing

log = logging.getLogger(__name__)

PULL_BATCH = 2000  # rows per upsert
OBSERVED_BATCH = 20_000  # observed rows per COPY (one transaction for all)
PULL_AHEAD = 2  # batches fetched ahead of the one being stored (bounds memory)

USAGE_KEY = ["period", "server_id", "item", "started_at"]
# A stored row's fields, in the order `_store` builds its tuples.
USAGE_FIELDS = [
    *USAGE_KEY,
    "ended_at",
    "billing_user_id",
    "solusio_user_id",
    "server_uuid",
    "server_name",
    "plan_id",
    "plan_name",
    "hours",
    "tokens_per_hour",
    "tokens_per_month",
    "reported_tokens",
    "backup_price",
    "generation",
    "customer",
]


def _store(
    period: Period,
    end: datetime,
    rows: Sequence[UsageRow],
    generation: int,
    known: Container[int],
    fresh: bool = False,
) -> int:
    """Upsert a batch of raw rows (in one transaction); returns how many are orphans.

    `end`: where the pulled range ends (a row without hours is counted up to it).
    `known`: the customer ids (a row of any other billing user is an orphan).
    `fresh`: the period had no stored rows when this pull began, so a plain insert will do
    (a third cheaper than the upsert); should SolusIO repeat a row across pages, the
    unique key refuses the batch and it is upserted instead."""
    # One row per key: a row SolusIO repeats (pages shifting under us) counts once, and
    # the upsert must not meet the same key twice in one statement.
    unique = {(r.server.id, str(r.item), r.started_at): r for r in rows}
    values = []
    orphans = 0
    for r in unique.values():
        billing_id = r.user.billing_user_id
        customer_id = billing_id if billing_id in known else None
        orphans += customer_id is None
        values.append(
            (
                period.month,
                r.server.id,
                str(r.item),
                r.started_at,
                r.ended_at,
                billing_id,
                r.user.id,
                r.server.uuid,
                r.server.name,
                r.plan.id,
                r.plan.name,
                r.hours_within(period.start, end),
                r.tph,
                r.tpm,
                r.tokens,
                r.backup_price,
                generation,
                customer_id,
            )
        )
    _write(values, fresh)
    return orphans


def _write(values: Sequence[Sequence[object]], fresh: bool) -> None:
    """Store USAGE_FIELDS tuples: a plain insert into a period that had no rows, an
    upsert otherwise (or when the insert meets a key twice). COPY in the binary format
    (a third of the pull's store time was the text format's per-value work)."""
    if fresh:
        try:
            with transaction.atomic():
                db.insert(UsageRecord, USAGE_FIELDS, values, binary=True)
            return
        except IntegrityError:
            log.info("usage rows repeated across pages; upserting the batch")
    with transaction.atomic():
        db.upsert(UsageRecord, USAGE_FIELDS, values, USAGE_KEY, binary=True)


def _begin(period: Period, now: datetime, source: str) -> tuple[int, int]:
    """Mark the period's pull as started by `source`: (pull id, its new generation)."""
    with transaction.atomic():
        pull, _ = UsagePull.objects.select_for_update().get_or_create(
            period=period.month,
            defaults={
                "period_start": period.start,
                "period_end": period.end,
                "started_at": now,
            },
        )
        generation = pull.generation + 1
        UsagePull.objects.filter(pk=pull.pk).update(
            generation=generation,
            started_at=now,
            completed_at=None,
            rows=0,
            source=source,
            fallback_reason="",
        )
    return pull.pk, generation


def _finish(
    period: Period, pull_id: int, generation: int, rows: int, end: datetime, reason: str = ""
) -> None:
    with transaction.atomic():
        # Rows an earlier pull stored and this one did not see are gone from SolusIO's
        # answer: drop them, so the table is exactly the latest complete pull.
        UsageRecord.objects.filter(period=period.month).exclude(generation=generation).delete()
        UsagePull.objects.filter(pk=pull_id, generation=generation).update(
            completed_at=timezone.now(), rows=rows, upto=end, fallback_reason=reason[:500]
        )


def pull_usage(
    *,
    period: Period,
    client: SolusIOClient,
    progress: Progress = no_progress,
    upto: datetime | None = None,
) -> tuple[int, int]:
    """Every usage row of the period (up to `upto`, for a month-to-date pull), stored.
    Returns (rows, orphans). Call under `db.period_lock`. Raises the client's SolusIOError
    when SolusIO fails for good; the period's pull then stays incomplete."""
    end = period.end if upto is None else min(period.end, upto)
    generation, fresh = begin(period, "usage_api")
    rows, orphans = store_pages(
        period=period, end=end, client=client, generation=generation, fresh=fresh,
        progress=progress,
    )  # fmt: skip
    finish(period, generation, rows, end)
    return rows, orphans


def begin(period: Period, source: str) -> tuple[int, bool]:
    """Start a pull of the period from `source`: (its generation, whether the period had no
    stored rows, so that a plain insert will do)."""
    _, generation = _begin(period, timezone.now(), source)
    return generation, not UsageRecord.objects.filter(period=period.month).exists()


def finish(period: Period, generation: int, rows: int, end: datetime, reason: str = "") -> None:
    """Mark the pull `generation` complete (it stored `rows` rows up to `end`)."""
    pull_id = UsagePull.objects.values_list("pk", flat=True).get(period=period.month)
    _finish(period, pull_id, generation, rows, end, reason)


def store_pages(
    *,
    period: Period,
    end: datetime,
    client: SolusIOClient,
    generation: int,
    fresh: bool,
    pages: tuple[int, int | None] = (1, None),
    progress: Progress = no_progress,
    known: Container[int] | None = None,
) -> tuple[int, int]:
    """Store the usage rows of `/usage` pages [first, last] (to the end without a last)
    of [period.start, end), each batch in its own transaction. `known`: every customer's
    id (read here when not given). Returns (rows, orphans)."""
    rows = orphans = 0
    if end <= period.start:  # a month-to-date pull at the first instant of the month
        return rows, orphans
    # Read once: one id a customer (a few MB at a million), not a query per batch.
    known = selectors.customer_ids() if known is None else known
    first, last = pages
    items = client.iter_usage_items(period.start, end, first_page=first, last_page=last)
    url = client.usage_url
    # A thread fetches the next pages (HTTP and JSON decoding, no database) while this one
    # parses and stores the last batch, so waiting for SolusIO overlaps with the work here.
    # Parsing stays here: the fetching thread then rarely holds the GIL, and this thread's
    # many short PostgreSQL round trips are not kept waiting for it.
    for raw in prefetched(batched(items, PULL_BATCH), ahead=PULL_AHEAD):
        batch = [parse_usage_row(item, f"usage[{rows + i}]", url=url) for i, item in enumerate(raw)]
        orphans += _store(period, end, batch, generation, known, fresh)
        rows += len(batch)
        progress("pull", rows)
    return rows, orphans


def store_observed_usage(
    *, period: Period, progress: Progress = no_progress, reason: str = ""
) -> tuple[int, int]:
    """The period's observed usage (`usage.observe`), stored as the `/usage` pull stores
    its rows, so the same build and rules bill it. `reason`: why the close fell back to
    it (every invoice built from it then waits for staff). Returns (rows, orphans). Call
    under `db.period_lock`, after `observe.require_complete_observation`. (The close
    stores it in server ranges, a task each: `store_observed`.)"""
    generation, fresh = begin(period, "observed")
    rows, orphans = store_observed(period, generation, fresh, observe.ALL_SERVERS, progress)
    finish(period, generation, rows, period.end, reason)
    return rows, orphans


def store_observed(
    period: Period,
    generation: int,
    fresh: bool,
    servers: tuple[int, int],
    progress: Progress = no_progress,
) -> tuple[int, int]:
    """Store the observed rows of the servers in `servers` (an `observe.observed_rows`
    range) in one transaction, COPY by batch: no SolusIO to wait for between batches (the
    `/usage` pull's reason to commit each). A batch is made whole before its COPY starts:
    making it reads the intervals on the same connection. Returns (rows, orphans)."""

    def batches() -> Iterator[list[tuple[object, ...]]]:
        made = observe.observed_rows(period, servers=servers)
        for batch in batched(made, OBSERVED_BATCH):
            # Observed rows are USAGE_FIELDS less period, reported tokens and generation.
            yield [(period.month, *row[:13], None, row[13], generation, row[14]) for row in batch]

    with transaction.atomic():
        return _write_all(batches, fresh, progress)


def _write_all(
    batches: Callable[[], Iterable[Sequence[Sequence[object]]]], fresh: bool, progress: Progress
) -> tuple[int, int]:
    """Store USAGE_FIELDS tuples as `_write` does, in the caller's transaction; `batches`
    is called again should the plain insert meet a key twice. Returns (rows, orphans)."""
    if fresh:
        try:
            with transaction.atomic():
                insert = functools.partial(db.insert, binary=True)
                return _write_batches(batches(), insert, progress)
        except IntegrityError:
            log.info("usage rows repeated; upserting them")
    upsert = functools.partial(db.upsert, unique=USAGE_KEY, binary=True)
    return _write_batches(batches(), upsert, progress)


def _write_batches(
    batches: Iterable[Sequence[Sequence[object]]],
    write: Callable[..., None],
    progress: Progress,
) -> tuple[int, int]:
    rows = orphans = 0
    for values in batches:
        write(UsageRecord, USAGE_FIELDS, values)
        rows += len(values)
        orphans += sum(1 for v in values if v[-1] is None)
        progress("pull", rows)
    return rows, orphans


def refresh_month_to_date(
    *, client: SolusIOClient | None = None, now: datetime | None = None
) -> int:
    """Pull the current month's usage so far into storage (rows keep updating until the
    close re-pulls the whole month), so previews read it from the database."""
    if settings.USAGE_SOURCE == "observed":
        return 0  # previews read the observed intervals themselves
    now = now or timezone.now()
    period = period_containing(now, settings.BILLING_TIMEZONE)
    with given_or_own(client) as client, db.period_lock(period):
        rows, _ = pull_usage(period=period, client=client, upto=now)
    return rows
