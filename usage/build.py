"""Build: the period's drafts from its stored usage, per batch of customers, writing only what
differs from the stored drafts; issued, paid and void invoices are frozen."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from usage import db, selectors
from usage.cycle import CloseError, CloseSummary, Progress, no_progress
from usage.models import Invoice, InvoiceLine, InvoiceStatus, UsageRecord
from usage.rules import (
    LINE_COLUMNS,
    InvoiceDraft,
    Period,
    PricingSnapshot,
    UsageInput,
    build_invoice,
)

log = logging.getLogger(__name__)

# A customer's draft and its fingerprint.
Built = dict[int, tuple[InvoiceDraft, str]]

LINE_FIELDS = ["invoice", *LINE_COLUMNS]
# The fields a rebuilt draft overwrites (its customer, period and status stay).
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
    "hold_reason",
    "fingerprint",
    "generated_at",
]
_INVOICE_KEY = ["customer", "period"]
_INVOICE_FIELDS = [*_INVOICE_KEY, "status", *_INVOICE_UPDATE]
_COUNTS = ("created", "updated", "unchanged", "frozen")


_HOLD_REASON_LENGTH = Invoice._meta.get_field("hold_reason").max_length


def _build_inputs(
    period: Period, customer_ids: Sequence[int], context: selectors.PricingContext
) -> tuple[Sequence[Sequence[object]], dict[int, PricingSnapshot]]:
    """What a batch's drafts are built from: its stored rows and pricing (database reads)."""
    return list(selectors.usage_of(period, customer_ids)), context.snapshots(customer_ids)


def _build_drafts(
    rows: Sequence[Sequence[object]], snapshots: dict[int, PricingSnapshot], review: str = ""
) -> Built:
    """Drafts and fingerprints from `_build_inputs`: pure (no database). `review`: why
    every draft waits for staff whatever its usage (the pull fell back to observed usage)."""
    usage: dict[int, list[UsageInput]] = defaultdict(list)
    for values in rows:
        usage[values[0]].append(selectors.usage_input(values))  # type: ignore[index]
    out: Built = {}
    for cid, items in usage.items():
        draft = build_invoice(items, snapshots[cid], review)
        out[cid] = (draft, draft.fingerprint())
    return out


def _invoice_values(
    customer_id: int, period: Period, draft: InvoiceDraft, fingerprint: str, now: datetime
) -> tuple[Any, ...]:
    """An invoice row's values in `_INVOICE_FIELDS` order (a tuple, not a model instance:
    a close makes tens of thousands, and Model.__init__ would be a tenth of the build)."""
    totals = draft.totals
    return (
        customer_id,
        period.month,
        InvoiceStatus.DRAFT.value,
        period.start,
        period.end,
        draft.pricing.currency,
        draft.tokens,
        totals.subtotal,
        totals.total - totals.subtotal,
        totals.total,
        draft.pricing.as_json(),
        [
            {"label": t.label, "rate": str(t.rate), "base": str(t.base), "amount": str(t.amount)}
            for t in totals.taxes
        ],
        draft.discrepancies,
        draft.hold_reason[:_HOLD_REASON_LENGTH],
        fingerprint,
        now,
    )


def _write_batch(period: Period, drafts: Built, summary: CloseSummary, now: datetime) -> None:
    with transaction.atomic():
        # A customer's live invoice, else their void one: a voided invoice stays the
        # period's (frozen), a corrected one has a live draft beside it (invoice_states).
        # (status, fingerprint) by customer: plain values, no model instances (a re-run
        # reads a whole batch of them).
        existing: dict[int, tuple[str, str]] = {}
        for customer_id, status, stored in (
            Invoice.objects.select_for_update()
            .filter(period=period.month, customer_id__any=list(drafts))
            .values_list("customer_id", "status", "fingerprint")
        ):
            if status != InvoiceStatus.VOID or customer_id not in existing:
                existing[customer_id] = (status, stored)
        to_write: list[tuple[int, tuple[Any, ...], InvoiceDraft]] = []
        replaced: list[int] = []  # customers whose existing draft's lines are replaced
        for customer_id, (draft, fingerprint) in drafts.items():
            found = existing.get(customer_id)
            if found is not None and found[0] != InvoiceStatus.DRAFT:  # issued, paid, void
                summary.frozen += 1
                continue
            if found is not None and found[1] == fingerprint:
                summary.unchanged += 1
                continue
            if found is None:
                summary.created += 1
            else:
                summary.updated += 1
                replaced.append(customer_id)
            values = _invoice_values(customer_id, period, draft, fingerprint, now)
            to_write.append((customer_id, values, draft))
        if not to_write:
            return
        written = db.upsert_returning(
            Invoice,
            _INVOICE_FIELDS,
            (v for _, v, _ in to_write),
            _INVOICE_KEY,
            where=~Q(status=InvoiceStatus.VOID),
            binary=True,
            returning=["customer", "id"],
        )
        if written is None:  # not PostgreSQL: read the ids back
            written = list(
                Invoice.objects.filter(
                    period=period.month, customer_id__any=[c for c, _, _ in to_write]
                )
                .exclude(status=InvoiceStatus.VOID)
                .values_list("customer_id", "id")
            )
        id_of = dict(written)
        if replaced:  # a new invoice has no lines to delete (most of a first close)
            InvoiceLine.objects.filter(invoice_id__any=[id_of[c] for c in replaced]).delete()
        db.insert(
            InvoiceLine,
            LINE_FIELDS,
            ((id_of[c], *values) for c, _, draft in to_write for values in draft.line_values),
            binary=True,
        )


def _build_range(
    period: Period,
    customer_ids: Sequence[int],
    context: selectors.PricingContext,
    now: datetime,
    summary: CloseSummary | None = None,
    progress: Progress = no_progress,
) -> dict[str, int]:
    """Build and write these customers' drafts, batch by batch (each its own transaction).
    Returns the counts it added to `summary` (a fresh one when none is given)."""
    summary = summary or CloseSummary(period=period.label, dry_run=False)
    before = {name: getattr(summary, name) for name in _COUNTS}
    done = 0
    size = settings.CLOSE_BUILD_BATCH
    review = selectors.fallback_reason(period)
    for start in range(0, len(customer_ids), size):
        chunk = customer_ids[start : start + size]
        drafts = _build_drafts(*_build_inputs(period, chunk, context), review)
        _write_batch(period, drafts, summary, now)
        done += len(chunk)
        progress("build", done)
    return {name: getattr(summary, name) - before[name] for name in _COUNTS}


def build_customers(
    period: Period,
    customer_ids: Sequence[int],
    summary: CloseSummary,
    progress: Progress = no_progress,
) -> None:
    """Build and write these customers' drafts (a close's shard, or a whole period), batch
    by batch, each batch its own transaction; the counts join `summary`."""
    context = selectors.PricingContext(selectors.pricing_instant(period))
    _build_range(period, customer_ids, context, timezone.now(), summary, progress)


def remove_stale_drafts(period: Period, customer_id: int | None = None) -> int:
    """Delete drafts of customers without usage any more (their rows turned out to be
    orphans, or SolusIO corrected itself): they have nothing to bill. Returns how many."""
    # NOT EXISTS: an anti-join on the (period, customer) index. (NOT IN over the month's
    # rows cannot be hashed once they outgrow work_mem, and is then quadratic.)
    billed = UsageRecord.objects.filter(period=period.month, customer_id=OuterRef("customer_id"))
    stale = Invoice.objects.filter(period=period.month, status=InvoiceStatus.DRAFT).exclude(
        Exists(billed)
    )
    if customer_id is not None:
        stale = stale.filter(customer_id=customer_id)
    _, deleted = stale.delete()
    return deleted.get(Invoice._meta.label, 0)  # not counting their lines


def build_invoices(
    *,
    period: Period,
    summary: CloseSummary,
    customer_id: int | None = None,
    progress: Progress = no_progress,
) -> None:
    """Drafts from the period's stored usage; call under `db.period_lock`."""
    if selectors.completed_pull(period) is None:
        raise CloseError(f"{period.label}: no complete usage pull; nothing is built")
    customer_ids = selectors.billed_customer_ids(period, customer_id)
    build_customers(period, customer_ids, summary, progress)
    summary.removed = remove_stale_drafts(period, customer_id)
