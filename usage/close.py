"""The cycle close: pull → store → build → issue (DESIGN §6), one period at a time. Every step
is idempotent, so a re-run or a second close ends in the state one clean run leaves
(docs/architecture.md, Cycle close). The stages and their record are `usage.workflow`; this
runs them in the calling process."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from solusio.client import SolusIOClient
from solusio.connect import given_or_own
from usage import selectors, workflow
from usage.cycle import CloseError, CloseSummary, Progress, no_progress
from usage.models import CloseRun
from usage.rules import Period


def check_closable(period: Period, *, dry_run: bool, pull: bool, now: datetime | None) -> None:
    now = now or timezone.now()
    if period.end > now:
        raise CloseError(f"{period.label} is not over until {period.end.isoformat()}")
    if not pull and dry_run:
        raise CloseError("a dry run always asks SolusIO: it stores nothing to build from")


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
    """Close `period` in this process: pull, store, build (shard after shard), and issue
    when auto-issue is on. Recorded as a `CloseRun` like a submitted close.

    Without `client`, one is built from the settings (`solusio.connect.solusio_client`).
    `pull=False` builds from the rows the last complete pull stored, without asking
    SolusIO (a finished month's usage does not change: re-building one customer's
    invoice after a pricing fix need not fetch the whole month again)."""
    check_closable(period, dry_run=dry_run, pull=pull, now=now)
    if dry_run:
        with given_or_own(client) as solusio:
            return selectors.dry_run(
                period=period, client=solusio, customer_id=customer_id, progress=progress
            )
    with workflow.inline_run(
        period=period, customer_id=customer_id, pull=pull, auto_issue=auto_issue
    ) as run:
        workflow.run_inline(run, client, progress)
    return workflow.summary_of(CloseRun.objects.get(pk=run.pk))
