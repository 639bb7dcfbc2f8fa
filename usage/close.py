"""The cycle close: pull → store → build → issue (DESIGN §6), one period at a time. Every step
is idempotent, so a re-run or a second close ends in the state one clean run leaves
(docs/architecture.md, Cycle close)."""

from __future__ import annotations

import time
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from bridge import metrics
from solusio.client import SolusIOClient
from solusio.connect import given_or_own
from usage import db, selectors, sources
from usage.build import build_invoices
from usage.cycle import CloseError, CloseSummary, Progress, no_progress
from usage.invoice_states import issue_invoices
from usage.models import BillingSettings, Invoice, InvoiceStatus, UsagePull, UsageRecord
from usage.rules import Period


def _issue_period(period: Period, customer_id: int | None, summary: CloseSummary) -> None:
    drafts = Invoice.objects.filter(period=period.month, status=InvoiceStatus.DRAFT)
    if customer_id is not None:
        drafts = drafts.filter(customer_id=customer_id)
    # A draft with a SolusIO discrepancy, or a hold reason (usage it cannot price, usage
    # from a fallback source), waits for staff.
    ready = Q(discrepancies=0, hold_reason="")
    summary.held = drafts.exclude(ready).count()
    ids = list(drafts.filter(ready).values_list("id", flat=True))
    summary.issued = issue_invoices(invoice_ids=ids)


def close_cycle(
    *,
    period: Period,
    client: SolusIOClient | None = None,
    customer_id: int | None = None,
    dry_run: bool = False,
    auto_issue: bool | None = None,
    progress: Progress = no_progress,
    now: datetime | None = None,
    pull: bool = True,
) -> CloseSummary:
    """Close `period`: pull, store, build, and issue when auto-issue is on.

    Without `client`, one is built from the settings (`solusio.connect.solusio_client`).
    `pull=False` builds from the rows the last complete pull stored, without asking
    SolusIO (a finished month's usage does not change: re-building one customer's
    invoice after a pricing fix need not fetch the whole month again)."""
    now = now or timezone.now()
    if period.end > now:
        raise CloseError(f"{period.label} is not over until {period.end.isoformat()}")
    if not pull and dry_run:
        raise CloseError("a dry run always asks SolusIO: it stores nothing to build from")
    if dry_run:
        with given_or_own(client) as solusio:
            return selectors.dry_run(
                period=period, client=solusio, customer_id=customer_id, progress=progress
            )
    summary = CloseSummary(period=period.label, dry_run=False)
    with db.period_lock(period):
        started = time.monotonic()
        if pull:
            with given_or_own(client) as solusio:
                fetched = sources.fetch(period=period, client=solusio, progress=progress)
            summary.rows, summary.orphans = fetched.rows, fetched.orphans
            summary.source, summary.fallback_reason = fetched.source, fetched.fallback_reason
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
        build_invoices(period=period, summary=summary, customer_id=customer_id, progress=progress)
        sources.check_drafts(period, customer_id)
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
    metrics.record_close(summary)
    return summary
