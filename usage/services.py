"""Cycle close and invoice state changes (DESIGN §6).

The close is pull → store → build → issue:

- pull: every page of `/usage` for the period, streamed, stored in batches with one upsert
  per batch keyed (period, server, item, start), so a row pulled twice is one row. A pull
  that SolusIO cuts short (after the client's own retries) raises and leaves the period's
  pull incomplete: nothing is built from it.
- build: per batch of customers, "what should be billed" comes from the pure
  `usage.rules.build_invoice`; its fingerprint is compared with the stored draft's and only
  the difference is written (Kill Bill's split). Issued, paid and void invoices are frozen.
- issue: numbers from a locked counter row, in the same transaction as the invoices.

One close per period at a time (a PostgreSQL advisory lock); the unique constraints are
the last line of defence. Every step is idempotent, so a re-run, a second close started at
once, or a re-run after a crash ends in the state one clean run leaves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from solusio.client import SolusIOClient
from solusio.usage_schema import UsageRow, parse_usage_row
from usage import bulk, emails, forked, legal, selectors
from usage.models import (
    BillingSettings,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    InvoiceStatus,
    UsagePull,
    UsageRecord,
)
from usage.prefetch import batched, prefetched
from usage.rules import (
    LINE_COLUMNS,
    InvoiceDraft,
    Period,
    PricingSnapshot,
    UsageInput,
    build_invoice,
    period_containing,
)

log = logging.getLogger(__name__)

PULL_BATCH = 2000  # rows per upsert
PULL_AHEAD = 2  # batches fetched ahead of the one being stored (bounds memory)
ISSUE_BATCH = 1000  # invoices per numbering transaction
COUNTER = "invoice"

Progress = Callable[[str, int], None]  # (stage, count so far)


class CloseError(Exception):
    """The close cannot run as asked (period not over, no complete pull, ...)."""


class InvoiceStateError(Exception):
    """An action that the invoice's state does not allow (e.g. regenerating an issued one)."""


@dataclass
class CloseSummary:
    period: str
    dry_run: bool
    rows: int = 0
    orphans: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    frozen: int = 0
    removed: int = 0
    issued: int = 0
    held: int = 0  # drafts kept for review because SolusIO disagreed with a line
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage


def _noop(stage: str, count: int) -> None:
    return None


# --- Locking ---------------------------------------------------------------------------


@contextmanager
def period_lock(period: Period) -> Iterator[None]:
    """One close of a period at a time across processes and machines: a PostgreSQL
    session advisory lock (a second close waits, then finds the work done). SQLite
    serialises writers on its own."""
    if connection.vendor != "postgresql":
        yield
        return
    key = int.from_bytes(hashlib.sha256(f"close:{period.label}".encode()).digest()[:8], "big")
    key -= 1 << 63  # into bigint range
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


# --- Pull --------------------------------------------------------------------------------

_UPDATE_FIELDS = [
    "ended_at",
    "customer",
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
    "generation",
]


_USAGE_FIELDS = [
    "period",
    "server_id",
    "item",
    "started_at",
    *(f for f in _UPDATE_FIELDS if f != "customer"),
    "customer",
]
_USAGE_KEY = ["period", "server_id", "item", "started_at"]


def _store(
    period: Period,
    rows: Sequence[UsageRow],
    generation: int,
    known: Container[int],
    fresh: bool = False,
) -> int:
    """Upsert a batch of raw rows (in one transaction); returns how many are orphans.

    `known`: the customer ids (a row of any other billing user is an orphan).
    `fresh`: the period had no stored rows when this pull began, so plain COPY will do (a
    third cheaper than the upsert); should SolusIO repeat a row across pages, the unique
    key refuses the batch and it is upserted instead."""
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
                r.hours,
                r.tph,
                r.tpm,
                r.tokens,
                generation,
                customer_id,
            )
        )
    if fresh and bulk.copy_supported():
        try:
            with transaction.atomic():
                bulk.copy_rows(UsageRecord, _USAGE_FIELDS, values)
            return orphans
        except IntegrityError:
            log.info("usage rows repeated across pages; upserting the batch")
    with transaction.atomic():
        if bulk.copy_supported():
            bulk.copy_upsert(UsageRecord, _USAGE_FIELDS, values, _USAGE_KEY)
        else:
            UsageRecord.objects.bulk_create(
                [
                    UsageRecord(
                        **dict(zip(_USAGE_FIELDS[:-1], v[:-1], strict=True)), customer_id=v[-1]
                    )
                    for v in values
                ],
                update_conflicts=True,
                unique_fields=_USAGE_KEY,
                update_fields=_UPDATE_FIELDS,
            )
    return orphans


def pull_usage(
    *,
    period: Period,
    client: SolusIOClient,
    progress: Progress = _noop,
    upto: datetime | None = None,
) -> tuple[int, int]:
    """Every usage row of the period (up to `upto`, for a month-to-date pull), stored.
    Returns (rows, orphans). Call under `period_lock`. Raises the client's SolusIOError
    when SolusIO fails for good; the period's pull then stays incomplete."""
    now = timezone.now()
    end = period.end if upto is None else min(period.end, upto)
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
            generation=generation, started_at=now, completed_at=None, rows=0
        )
    rows = orphans = 0
    fresh = not UsageRecord.objects.filter(period=period.month).exists()
    # Read once: one id a customer (a few MB at a million), not a query per batch.
    known = selectors.customer_ids()
    items = client.iter_usage_items(period.start, end) if end > period.start else iter(())
    # A thread fetches the next pages (HTTP and JSON decoding, no database) while this one
    # parses and stores the last batch, so waiting for SolusIO overlaps with the work here.
    # Parsing stays here: the fetching thread then rarely holds the GIL, and this thread's
    # many short PostgreSQL round trips are not kept waiting for it.
    for raw in prefetched(batched(items, PULL_BATCH), ahead=PULL_AHEAD):
        batch = [parse_usage_row(item, f"usage[{rows + i}]") for i, item in enumerate(raw)]
        orphans += _store(period, batch, generation, known, fresh)
        rows += len(batch)
        progress("pull", rows)
    with transaction.atomic():
        # Rows an earlier pull stored and this one did not see are gone from SolusIO's
        # answer: drop them, so the table is exactly the latest complete pull.
        UsageRecord.objects.filter(period=period.month).exclude(generation=generation).delete()
        UsagePull.objects.filter(pk=pull.pk, generation=generation).update(
            completed_at=timezone.now(), rows=rows, upto=end
        )
    return rows, orphans


# --- Build -------------------------------------------------------------------------------


# A customer's draft and its fingerprint.
Built = dict[int, tuple[InvoiceDraft, str]]


def _build_inputs(
    period: Period, customer_ids: Sequence[int], context: selectors.PricingContext
) -> tuple[Sequence[Sequence[object]], dict[int, PricingSnapshot]]:
    """What a batch's drafts are built from: its stored rows and pricing (database reads)."""
    return list(selectors.usage_of(period, customer_ids)), context.snapshots(customer_ids)


def _build_drafts(rows: Sequence[Sequence[object]], snapshots: dict[int, PricingSnapshot]) -> Built:
    """Drafts and fingerprints from `_build_inputs`: pure (no database)."""
    usage: dict[int, list[UsageInput]] = defaultdict(list)
    for values in rows:
        usage[values[0]].append(selectors.usage_input(values))  # type: ignore[index]
    out: Built = {}
    for cid, items in usage.items():
        draft = build_invoice(items, snapshots[cid])
        out[cid] = (draft, draft.fingerprint())
    return out


def _invoice_values(
    customer_id: int, period: Period, draft: InvoiceDraft, fingerprint: str, now: datetime
) -> dict[str, Any]:
    """An invoice row's field values (a dict, not a model instance: a close makes tens
    of thousands, and Model.__init__ would be a tenth of the build)."""
    totals = draft.totals
    return {
        "customer_id": customer_id,
        "period": period.month,
        "status": InvoiceStatus.DRAFT.value,
        "period_start": period.start,
        "period_end": period.end,
        "currency": draft.pricing.currency,
        "tokens": draft.tokens,
        "subtotal": totals.subtotal,
        "tax_total": totals.total - totals.subtotal,
        "total": totals.total,
        "snapshot": draft.pricing.as_json(),
        "taxes": [
            {"label": t.label, "rate": str(t.rate), "base": str(t.base), "amount": str(t.amount)}
            for t in totals.taxes
        ],
        "discrepancies": draft.discrepancies,
        "fingerprint": fingerprint,
        "generated_at": now,
    }


_LINE_FIELDS = ["invoice", *LINE_COLUMNS]


_JSON = frozenset({"snapshot", "taxes"})
_INVOICE_UPDATE = [
    "period_start",
    "period_end",
    "currency",
    "tokens",
    "subtotal",
    "tax_total",
    "total",
    "snapshot",
    "taxes",
    "discrepancies",
    "fingerprint",
    "generated_at",
]

# A test hook: called after each committed build batch (crash-and-rerun tests raise here).
_after_build_batch: Callable[[int], None] | None = None


def _write_batch(period: Period, drafts: Built, summary: CloseSummary, now: datetime) -> None:
    with transaction.atomic():
        existing = {
            inv.customer_id: inv
            for inv in Invoice.objects.select_for_update()
            .filter(period=period.month, customer_id__in=list(drafts))
            .only("id", "customer_id", "status", "fingerprint")
        }
        to_write: list[tuple[dict[str, Any], InvoiceDraft]] = []
        replaced: list[int] = []  # customers whose existing draft's lines are replaced
        for customer_id, (draft, fingerprint) in drafts.items():
            found = existing.get(customer_id)
            if found is not None and found.is_frozen:
                summary.frozen += 1
                continue
            if found is not None and found.fingerprint == fingerprint:
                summary.unchanged += 1
                continue
            if found is None:
                summary.created += 1
            else:
                summary.updated += 1
                replaced.append(customer_id)
            to_write.append((_invoice_values(customer_id, period, draft, fingerprint, now), draft))
        if not to_write:
            return
        if bulk.copy_supported():
            fields = ["customer", "period", "status", *_INVOICE_UPDATE]
            keys = ["customer_id", "period", "status", *_INVOICE_UPDATE]
            bulk.copy_upsert(
                Invoice,
                fields,
                (
                    tuple(
                        bulk.jsonb(v) if k in _JSON else v for k, v in ((k, inv[k]) for k in keys)
                    )
                    for inv, _ in to_write
                ),
                ["customer", "period"],
            )
            id_of = dict(
                Invoice.objects.filter(
                    period=period.month,
                    customer_id__in=[inv["customer_id"] for inv, _ in to_write],
                ).values_list("customer_id", "id")
            )
        else:
            written = Invoice.objects.bulk_create(
                [Invoice(**inv) for inv, _ in to_write],
                update_conflicts=True,
                unique_fields=["customer", "period"],
                update_fields=_INVOICE_UPDATE,
            )
            id_of = {inv.customer_id: inv.pk for inv in written}
        if replaced:  # a new invoice has no lines to delete (most of a first close)
            InvoiceLine.objects.filter(invoice_id__in=[id_of[c] for c in replaced]).delete()
        rows = (
            (id_of[inv["customer_id"]], *values)
            for inv, draft in to_write
            for values in draft.line_values
        )
        if bulk.copy_supported():
            bulk.copy_rows(InvoiceLine, _LINE_FIELDS, rows)
        else:
            names = ["invoice_id", *_LINE_FIELDS[1:]]
            InvoiceLine.objects.bulk_create(
                (InvoiceLine(**dict(zip(names, row, strict=True))) for row in rows),
                batch_size=2000,
            )


def _build_processes(customers: int) -> int:
    """How many processes build: 2 when there is enough work, the database is PostgreSQL
    and no transaction is open (a child could not see its rows), else 1."""
    wanted = settings.CLOSE_BUILD_PROCESSES
    if (
        wanted < 2
        or customers < 2 * settings.CLOSE_BUILD_BATCH
        or connection.vendor != "postgresql"
        or connection.in_atomic_block
        or not forked.available()
    ):
        return 1
    return 2


_COUNTS = ("created", "updated", "unchanged", "frozen")


def _build_range(
    period: Period,
    customer_ids: Sequence[int],
    context: selectors.PricingContext,
    now: datetime,
    summary: CloseSummary | None = None,
    progress: Progress = _noop,
) -> dict[str, int]:
    """Build and write these customers' drafts, batch by batch (each its own transaction).
    Returns the counts it added to `summary` (a fresh one when none is given)."""
    summary = summary or CloseSummary(period=period.label, dry_run=False)
    before = {name: getattr(summary, name) for name in _COUNTS}
    done = 0
    size = settings.CLOSE_BUILD_BATCH
    for start in range(0, len(customer_ids), size):
        chunk = customer_ids[start : start + size]
        _write_batch(period, _build_drafts(*_build_inputs(period, chunk, context)), summary, now)
        done += len(chunk)
        progress("build", done)
        if _after_build_batch is not None:
            _after_build_batch(done)
    return {name: getattr(summary, name) - before[name] for name in _COUNTS}


def build_invoices(
    *,
    period: Period,
    summary: CloseSummary,
    customer_id: int | None = None,
    progress: Progress = _noop,
) -> None:
    """Drafts from the period's stored usage; call under `period_lock`."""
    if selectors.completed_pull(period) is None:
        raise CloseError(f"{period.label}: no complete usage pull; nothing is built")
    now = timezone.now()
    context = selectors.PricingContext(selectors.pricing_instant(period))
    customer_ids = selectors.billed_customer_ids(period, customer_id)
    # Building is pure Python between round trips, so one process keeps one core busy. A
    # forked child builds the second half of the customers on the other (threads only
    # took turns for the GIL: measured slower than one). Same batches, same transactions,
    # same drafts; the child's counts join this summary.
    half = len(customer_ids) // 2 if _build_processes(len(customer_ids)) > 1 else 0
    mine, theirs = (
        customer_ids[: len(customer_ids) - half],
        customer_ids[len(customer_ids) - half :],
    )
    child = forked.Child(_build_range, period, theirs, context, now) if theirs else None
    if child is not None:
        log.info(
            "%s: building %d customers here and %d in process %d",
            period.label,
            len(mine),
            len(theirs),
            child.pid,
        )
    try:
        _build_range(period, mine, context, now, summary, progress)
    except BaseException:
        if child is not None:
            child.kill()
        raise
    if child is not None:
        try:
            counts = child.result()
        except forked.ChildFailed as exc:
            raise CloseError(
                f"{period.label}: building invoices failed; run the close again"
            ) from exc
        for name, value in counts.items():
            setattr(summary, name, getattr(summary, name) + value)
        progress("build", len(customer_ids))
    # Drafts of customers without usage any more (their rows turned out to be orphans, or
    # SolusIO corrected itself) have nothing to bill.
    stale = Invoice.objects.filter(period=period.month, status=InvoiceStatus.DRAFT).exclude(
        customer_id__in=customer_ids
    )
    if customer_id is not None:
        stale = stale.filter(customer_id=customer_id)
    _, deleted = stale.delete()
    summary.removed = deleted.get(Invoice._meta.label, 0)  # not counting their lines


def regenerate_invoice(*, invoice_id: int) -> Invoice | None:
    """Rebuild one draft from the stored usage and today's prices."""
    invoice = Invoice.objects.get(pk=invoice_id)
    if invoice.is_frozen:
        raise InvoiceStateError(f"{invoice.display_number} is {invoice.status}: only drafts")
    period = Period(invoice.period, invoice.period_start, invoice.period_end)
    summary = CloseSummary(period=period.label, dry_run=False)
    with period_lock(period):
        build_invoices(period=period, summary=summary, customer_id=invoice.customer_id)
    # None when the customer has no usage left in the period (the draft was removed).
    return Invoice.objects.filter(customer_id=invoice.customer_id, period=invoice.period).first()


# --- Issue, pay, void ----------------------------------------------------------------------


def issue_invoices(*, invoice_ids: Iterable[int], now: datetime | None = None) -> int:
    """Number and freeze the given drafts; others are left alone. Returns how many.

    Gap-free under concurrency: the counter row is locked first (so concurrent issuers
    queue up), numbers are taken in (period, customer) order, and the counter and the
    invoices commit together — a rolled-back issue leaves no hole.
    """
    now = now or timezone.now()
    ids = sorted(set(invoice_ids))
    issued = 0
    for start in range(0, len(ids), ISSUE_BATCH):
        with transaction.atomic():
            counter = InvoiceCounter.objects.select_for_update().get_or_create(name=COUNTER)[0]
            rows = list(
                Invoice.objects.select_for_update()
                .filter(pk__in=ids[start : start + ISSUE_BATCH], status=InvoiceStatus.DRAFT)
                .order_by("period", "customer_id", "id")
                .values_list("id", "customer_id")
            )
            order = [invoice_id for invoice_id, _ in rows]
            numbers = range(counter.last + 1, counter.last + 1 + len(order))
            # Seller and customer as they are now: later edits never change this invoice.
            details = legal.details_on_issue(customer_ids=[c for _, c in rows], now=now)
            _set_numbers(order, numbers, [details[c] for _, c in rows], now)
            counter.last += len(order)
            counter.save(update_fields=["last"])
            # The customers' e-mails, recorded with the issue and sent once it commits.
            emails.record_issued(invoice_ids=order, now=now)
            issued += len(order)
    return issued


def _set_numbers(
    ids: Sequence[int], numbers: Sequence[int], details: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Issue `ids` with `numbers` and legal `details`, pairwise: one UPDATE on PostgreSQL."""
    if not ids:
        return
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Invoice._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS i SET number = n.number, legal = n.legal::jsonb, "  # noqa: S608
                "status = %s, issued_at = %s "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS n(id, number, legal) "
                "WHERE i.id = n.id",
                [
                    InvoiceStatus.ISSUED.value,
                    now,
                    list(ids),
                    list(numbers),
                    [json.dumps(d) for d in details],
                ],
            )
        return
    for invoice_id, number, legal_details in zip(ids, numbers, details, strict=True):
        Invoice.objects.filter(pk=invoice_id).update(
            number=number, legal=legal_details, status=InvoiceStatus.ISSUED, issued_at=now
        )


def issue_invoice(*, invoice_id: int) -> Invoice:
    if not issue_invoices(invoice_ids=[invoice_id]):
        invoice = Invoice.objects.get(pk=invoice_id)
        raise InvoiceStateError(f"{invoice.display_number} is {invoice.status}, not a draft")
    return Invoice.objects.get(pk=invoice_id)


def _transition(invoice_id: int, allowed: set[str], **changes: Any) -> Invoice:
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if invoice.status not in allowed:
            raise InvoiceStateError(
                f"{invoice.display_number} is {invoice.status}; allowed from: "
                + ", ".join(sorted(allowed))
            )
        for name, value in changes.items():
            setattr(invoice, name, value)
        invoice.save(update_fields=list(changes))
    return invoice


def mark_paid(*, invoice_id: int, now: datetime | None = None) -> Invoice:
    invoice = _transition(
        invoice_id, {InvoiceStatus.ISSUED}, status=InvoiceStatus.PAID, paid_at=now or timezone.now()
    )
    _after_settlement(invoice, now)
    return invoice


def void_invoice(*, invoice_id: int, now: datetime | None = None) -> Invoice:
    """Void keeps the number (the sequence stays gap-free); a draft cannot be voided."""
    invoice = _transition(
        invoice_id,
        {InvoiceStatus.ISSUED},
        status=InvoiceStatus.VOID,
        voided_at=now or timezone.now(),
    )
    _after_settlement(invoice, now)
    return invoice


def _after_settlement(invoice: Invoice, now: datetime | None) -> None:
    """A paid or voided invoice may lift a dunning suspension."""
    from usage import dunning  # dunning needs users.services; keep the import local

    dunning.reactivate_if_settled(customer_id=invoice.customer_id, now=now)


# --- The close ---------------------------------------------------------------------------


def _issue_period(period: Period, customer_id: int | None, summary: CloseSummary) -> None:
    drafts = Invoice.objects.filter(period=period.month, status=InvoiceStatus.DRAFT)
    if customer_id is not None:
        drafts = drafts.filter(customer_id=customer_id)
    summary.held = drafts.filter(discrepancies__gt=0).count()
    ids = list(drafts.filter(discrepancies=0).values_list("id", flat=True))
    summary.issued = issue_invoices(invoice_ids=ids)


def close_cycle(
    *,
    period: Period,
    client: SolusIOClient | None = None,
    customer_id: int | None = None,
    dry_run: bool = False,
    auto_issue: bool | None = None,
    progress: Progress = _noop,
    now: datetime | None = None,
    pull: bool = True,
) -> CloseSummary:
    """Close `period`: pull, store, build, and issue when auto-issue is on.

    `pull=False` builds from the rows the last complete pull stored, without asking
    SolusIO (a finished month's usage does not change: re-building one customer's
    invoice after a pricing fix need not fetch the whole month again)."""
    now = now or timezone.now()
    if period.end > now:
        raise CloseError(f"{period.label} is not over until {period.end.isoformat()}")
    if not pull and dry_run:
        raise CloseError("a dry run always asks SolusIO: it stores nothing to build from")
    own_client = client is None and pull
    client = client or (SolusIOClient() if pull else None)
    try:
        if dry_run:
            assert client is not None
            return _dry_run(period, client, customer_id, progress)
        summary = CloseSummary(period=period.label, dry_run=False)
        with period_lock(period):
            started = time.monotonic()
            if pull:
                assert client is not None
                summary.rows, summary.orphans = pull_usage(
                    period=period, client=client, progress=progress
                )
            else:
                stored = selectors.completed_pull(period)
                if stored is None:
                    raise CloseError(
                        f"{period.label}: no complete usage pull stored; close it with a pull"
                    )
                summary.rows = stored.rows
                summary.orphans = UsageRecord.objects.filter(
                    period=period.month, customer__isnull=True
                ).count()
            pulled = time.monotonic()
            build_invoices(
                period=period, summary=summary, customer_id=customer_id, progress=progress
            )
            built = time.monotonic()
            if auto_issue is None:  # the staff setting, unless the caller decided
                auto_issue = BillingSettings.load().auto_issue
            if auto_issue:
                _issue_period(period, customer_id, summary)
            summary.seconds = {
                "pull": pulled - started,
                "build": built - pulled,
                "issue": time.monotonic() - built,
            }
            if customer_id is None:
                UsagePull.objects.filter(period=period.month).update(closed_at=timezone.now())
        summary.figures = selectors.period_figures(period, customer_id)
        return summary
    finally:
        if own_client and client is not None:
            client.close()


def _usage_input(row: UsageRow) -> UsageInput:
    return UsageInput(
        server_id=row.server.id,
        server_uuid=row.server.uuid,
        server_name=row.server.name,
        plan_id=row.plan.id,
        plan_name=row.plan.name,
        item=str(row.item),
        started_at=row.started_at,
        ended_at=row.ended_at,
        hours=row.hours,
        tokens_per_hour=row.tph,
        tokens_per_month=row.tpm,
        reported_tokens=row.tokens,
    )


def drafts_from_solusio(
    *,
    period: Period,
    client: SolusIOClient,
    upto: datetime | None = None,
    customer_id: int | None = None,
    progress: Progress = _noop,
    at: datetime | None = None,
) -> tuple[dict[int, InvoiceDraft], int, int]:
    """Invoices straight from SolusIO's answer, nothing stored: (drafts, rows, orphans).
    For the dry run and the month-to-date preview."""
    end = min(period.end, upto) if upto else period.end
    usage: dict[int | None, list[UsageInput]] = defaultdict(list)
    rows = 0
    if end > period.start:
        for row in client.iter_usage(period.start, end):
            rows += 1
            billing_id = row.user.billing_user_id
            if customer_id is not None and billing_id != customer_id:
                continue
            usage[billing_id].append(_usage_input(row))
            if rows % PULL_BATCH == 0:
                progress("pull", rows)
    ids = [cid for cid in usage if cid is not None]
    customers = selectors.customers_for_pricing(ids)
    # Prices in force at `at` (a preview: now), else at the period's end (a dry run).
    context = selectors.PricingContext(at or selectors.pricing_instant(period))
    drafts: dict[int, InvoiceDraft] = {}
    orphans = len(usage.pop(None, []))
    for cid, items in usage.items():
        customer = customers.get(cid)  # type: ignore[arg-type]
        if customer is None:
            orphans += len(items)
            continue
        drafts[cid] = build_invoice(items, context.snapshot(customer))  # type: ignore[index]
    return drafts, rows, orphans


def _dry_run(
    period: Period, client: SolusIOClient, customer_id: int | None, progress: Progress
) -> CloseSummary:
    drafts, rows, orphans = drafts_from_solusio(
        period=period, client=client, customer_id=customer_id, progress=progress
    )
    summary = CloseSummary(period=period.label, dry_run=True, rows=rows, orphans=orphans)
    per_currency: dict[str, dict[str, Any]] = {}
    for draft in drafts.values():
        figures = per_currency.setdefault(
            draft.pricing.currency,
            {
                "invoices": 0,
                "tokens": 0,
                "subtotal": Decimal(0),
                "taxes": Decimal(0),
                "total": Decimal(0),
            },
        )
        figures["invoices"] += 1
        figures["tokens"] += draft.tokens
        figures["subtotal"] += draft.totals.subtotal
        figures["taxes"] += draft.totals.total - draft.totals.subtotal
        figures["total"] += draft.totals.total
    summary.figures = {
        "customers": len(drafts),
        "lines": sum(len(d.lines) for d in drafts.values()),
        "discrepancies": sum(d.discrepancies for d in drafts.values()),
        "orphans": orphans,
        "by_status": {},
        "per_currency": dict(sorted(per_currency.items())),
    }
    return summary


@dataclass(frozen=True)
class Preview:
    period: Period
    draft: InvoiceDraft | None  # None: no usage so far
    as_of: datetime  # usage up to this instant
    live: bool  # read from SolusIO now, rather than from the last month-to-date pull


def refresh_month_to_date(
    *, client: SolusIOClient | None = None, now: datetime | None = None
) -> int:
    """Pull the current month's usage so far into storage (rows keep updating until the
    close re-pulls the whole month), so previews read it from the database."""
    now = now or timezone.now()
    period = period_containing(now, settings.BILLING_TIMEZONE)
    own_client = client is None
    client = client or SolusIOClient()
    try:
        with period_lock(period):
            rows, _ = pull_usage(period=period, client=client, upto=now)
    finally:
        if own_client:
            client.close()
    return rows


def preview_invoice(
    *,
    customer_id: int,
    client: SolusIOClient | None = None,
    now: datetime | None = None,
    live: bool = False,
) -> Preview:
    """What the current month costs the customer so far, through the same rules.

    From the last month-to-date pull when there is one (one indexed query; the hourly
    beat keeps it fresh), else — or with `live` — from SolusIO itself. SolusIO's usage
    list has no per-user filter, so a live preview reads the whole month's pages
    (streamed) and keeps the customer's rows: fine for a click, not for every page view.
    """
    now = now or timezone.now()
    period = period_containing(now, settings.BILLING_TIMEZONE)
    context = selectors.PricingContext(now)
    stored = None if live else selectors.month_to_date_pull(period)
    if stored is not None and stored.upto is not None:
        items = [selectors.usage_input(v) for v in selectors.usage_of(period, [customer_id])]
        snapshot = context.snapshots([customer_id]).get(customer_id)
        draft = build_invoice(items, snapshot) if items and snapshot else None
        return Preview(period, draft, stored.upto, live=False)
    own_client = client is None
    client = client or SolusIOClient()
    try:
        drafts, _, _ = drafts_from_solusio(
            period=period, client=client, upto=now, customer_id=customer_id, at=now
        )
    finally:
        if own_client:
            client.close()
    return Preview(period, drafts.get(customer_id), now, live=True)


def snapshot_of(invoice: Invoice) -> PricingSnapshot:
    return PricingSnapshot.from_json(invoice.snapshot)
