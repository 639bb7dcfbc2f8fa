"""The cycle close as a workflow of stages recorded in PostgreSQL (`CloseRun`, `CloseShard`):

    pull  ──>  shard 0 … shard n-1 (customer id ranges)  ──>  issue

Submitted, every stage is a Celery task on the close queue (`usage.tasks.close_*`), so any
number of worker hosts build a period together; inline (`close.close_cycle`, the command's
default), one process runs the same stages in order. The database rows, not the broker, are
the truth:

- A stage is *claimed* by an atomic UPDATE whose attempt number is a fence: an attempt that
  lost its claim records no outcome. A claim is a lease, renewed as the stage progresses;
  `sweep` (on beat) asks again for a stage whose lease ran out (its worker died: a killed
  prefork child's message is rejected back to the queue, a killed host's one comes back
  only after the broker's visibility timeout) or whose message was lost.
- The last shard to finish moves the run to *issuing* in the transaction that records it,
  and asks for the issuing step when that commits. The issuing step runs in one transaction
  holding the run's row: it happens once, or not at all, however often it is asked for.
- A shard that fails is retried with backoff; one retried or re-run writes nothing twice:
  a draft with the same fingerprint is left unchanged, an invoice is unique per customer and
  period, a line per invoice and position.
- Locks: the pull and the issuing step take the period's advisory lock, shards take it
  shared; at most one active run per period is a constraint. An inline run holds the lock
  from start to end, so an active inline run found under the lock is one whose process
  died: it is marked failed and the new close goes ahead.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from bridge import metrics
from solusio.client import SolusIOClient
from solusio.connect import given_or_own
from usage import build, db, pull, selectors, sources
from usage.cycle import CloseError, CloseSummary, Progress, no_progress
from usage.invoice_states import issue_invoices
from usage.models import (
    ACTIVE_CLOSE_STATES,
    BillingSettings,
    CloseRun,
    CloseRunState,
    CloseShard,
    CloseShardStage,
    CloseShardState,
    Invoice,
    InvoiceStatus,
    UsagePull,
    UsageRecord,
)
from usage.rules import Period, period_of_month

log = logging.getLogger(__name__)

SHARD_COUNTS = ("created", "updated", "unchanged", "frozen")
# How often a stage writes its progress (and renews its lease) at most.
PROGRESS_EVERY = 1.0


class StageLost(Exception):
    """This attempt no longer holds its stage (its lease ran out and another took it)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def period_of(run: CloseRun) -> Period:
    return period_of_month(run.period.year, run.period.month, settings.BILLING_TIMEZONE)


def _lease() -> datetime:
    return timezone.now() + timedelta(seconds=settings.CLOSE_LEASE_SECONDS)


# --- Starting a run ------------------------------------------------------------------------


def start(
    *,
    period: Period,
    customer_id: int | None = None,
    pull: bool = True,
    auto_issue: bool | None = None,
    inline: bool,
) -> CloseRun:
    """Record a new run of `period` (call under `db.period_lock`). CloseError when another
    run of the period is active."""
    with transaction.atomic():
        for dead in CloseRun.objects.select_for_update().filter(
            period=period.month, state__in=ACTIVE_CLOSE_STATES, inline=True
        ):
            # An inline run holds the lock we hold now until it ends: its process died.
            _fail(dead, "the closing process ended before the close finished")
        if auto_issue is None:  # the staff setting, unless the caller decided
            auto_issue = BillingSettings.load().auto_issue
        try:
            with transaction.atomic():
                return CloseRun.objects.create(
                    period=period.month,
                    customer_id=customer_id,
                    pull=pull,
                    auto_issue=auto_issue,
                    inline=inline,
                    state=CloseRunState.PULLING,
                    started_at=timezone.now(),
                )
        except IntegrityError:
            active = CloseRun.objects.filter(
                period=period.month, state__in=ACTIVE_CLOSE_STATES
            ).first()
            raise CloseError(
                f"{period.label}: close run #{active.pk if active else '?'} is still running"
            ) from None


def submit(
    *,
    period: Period,
    customer_id: int | None = None,
    pull: bool = True,
    auto_issue: bool | None = None,
) -> CloseRun:
    """Start a run on Celery: its pull is asked for once the run is recorded."""
    with db.period_lock(period):
        run = start(
            period=period, customer_id=customer_id, pull=pull, auto_issue=auto_issue, inline=False
        )
    _enqueue_stage(run.pk, CloseRunState.PULLING)
    return run


def run_inline(run: CloseRun, client: SolusIOClient | None, progress: Progress) -> None:
    """Every stage of `run` in this process (call under `db.period_lock`)."""
    # Read anew for each inline run: on SQLite a run's id (and, under a frozen test
    # clock, its start) may repeat.
    _known.clear()
    with given_or_own(client) if run.pull else nullcontext() as solusio:
        pull_stage(run.pk, client=solusio, progress=progress)
        if _run_shards(run, CloseShardStage.PULL, solusio, progress):
            pull_stage(run.pk, client=solusio, progress=progress)  # the pull's end
    _run_shards(run, CloseShardStage.BUILD, None, progress)
    issue_stage(run.pk)


def _run_shards(
    run: CloseRun, stage: str, client: SolusIOClient | None, progress: Progress
) -> bool:
    """Run the run's shards of `stage` here, in order; False when it has none."""
    shard_ids = list(CloseShard.objects.filter(run=run, stage=stage).values_list("id", flat=True))
    for shard_id in shard_ids:
        try:
            run_shard(shard_id, client=client, progress=progress, max_attempts=1)
        except ShardFailed as failed:
            raise failed.__cause__ from None  # type: ignore[misc]
    return bool(shard_ids)


# --- Messages (the Celery side; imported late: tasks import this module) ------------------


def _enqueue_stage(run_id: int, state: str) -> None:
    from usage import tasks

    task = tasks.close_pull if state == CloseRunState.PULLING else tasks.close_issue
    transaction.on_commit(
        lambda: task.apply_async((run_id,), queue=settings.CLOSE_QUEUE), robust=True
    )


def _enqueue_shards(shard_ids: list[int]) -> None:
    from usage import tasks

    def send() -> None:
        for shard_id in shard_ids:
            tasks.close_shard.apply_async((shard_id,), queue=settings.CLOSE_QUEUE)

    CloseShard.objects.filter(pk__in=shard_ids).update(enqueued_at=timezone.now())
    transaction.on_commit(send, robust=True)


# --- Claims --------------------------------------------------------------------------------


def _claim_stage(run_id: int, state: str) -> int | None:
    """Take the run's pull or issuing step: its attempt number, or None when the run is not
    in that stage or another worker holds it."""
    now = timezone.now()
    claimed = CloseRun.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now), pk=run_id, state=state
    ).update(
        stage_attempts=F("stage_attempts") + 1,
        stage_host=worker_name(),
        lease_until=_lease(),
    )
    if not claimed:
        return None
    return CloseRun.objects.values_list("stage_attempts", flat=True).get(pk=run_id)


def release_stage(run_id: int, attempt: int) -> None:
    """Give up the pull or the issuing step (a retry will claim it again)."""
    CloseRun.objects.filter(pk=run_id, stage_attempts=attempt).update(lease_until=None)


# A shard can run while its run is in the shard's stage.
_IN_ITS_STAGE = Q(stage=CloseShardStage.PULL, run__state=CloseRunState.PULLING) | Q(
    stage=CloseShardStage.BUILD, run__state=CloseRunState.BUILDING
)


def _claim_shard(shard_id: int) -> int | None:
    now = timezone.now()
    claimed = CloseShard.objects.filter(
        Q(state=CloseShardState.PENDING) | Q(state=CloseShardState.RUNNING, lease_until__lt=now),
        _IN_ITS_STAGE,
        pk=shard_id,
    ).update(
        state=CloseShardState.RUNNING,
        attempts=F("attempts") + 1,
        worker=worker_name(),
        started_at=now,
        lease_until=_lease(),
        built=0,
        rows=0,
        orphans=0,
    )
    if not claimed:
        return None
    return CloseShard.objects.values_list("attempts", flat=True).get(pk=shard_id)


def _renewer(renew: Callable[[], int], record: Progress, progress: Progress) -> Progress:
    """A progress callback that renews the stage's lease (at most once a second), raising
    StageLost when the claim is gone."""
    last = 0.0

    def step(stage: str, count: int) -> None:
        nonlocal last
        progress(stage, count)
        if time.monotonic() - last < PROGRESS_EVERY:
            return
        last = time.monotonic()
        record(stage, count)
        if not renew():
            raise StageLost

    return step


# --- The stages ----------------------------------------------------------------------------


def pull_stage(
    run_id: int, *, client: SolusIOClient | None = None, progress: Progress = no_progress
) -> bool:
    """The pull's two ends. The first claim begins the period's pull, cuts it into pull
    shards and asks for them; the claim once they are all done ends the pull (or, for a
    run without a pull, checks the stored one) and cuts the build into shards. False when
    another worker holds the stage, it is over, or its pull shards are still running."""
    attempt = _claim_stage(run_id, CloseRunState.PULLING)
    if attempt is None:
        return False
    run = CloseRun.objects.get(pk=run_id)
    period = period_of(run)

    def renew() -> int:
        return CloseRun.objects.filter(
            pk=run_id, stage_attempts=attempt, state=CloseRunState.PULLING
        ).update(lease_until=_lease())

    started = time.monotonic()
    with db.period_lock(period):
        if run.pull and run.pull_generation is None:
            with given_or_own(client) as solusio:
                plan = sources.plan_pull(period=period, client=solusio)
            _plan_pull_shards(run, plan, renew)
            return True
        parts = CloseShard.objects.filter(run_id=run_id, stage=CloseShardStage.PULL)
        if parts.exclude(state=CloseShardState.DONE).exists():
            release_stage(run_id, attempt)  # the last of them asks again
            return False
        if run.pull:
            totals = parts.aggregate(rows=Sum("rows"), orphans=Sum("orphans"))
            rows, orphans = totals["rows"] or 0, totals["orphans"] or 0
            assert run.pull_generation is not None
            pull.finish(period, run.pull_generation, rows, period.end, run.fallback_reason)
            source, reason = run.source, run.fallback_reason
        else:
            stored = selectors.completed_pull(period)
            if stored is None:
                raise CloseError(
                    f"{period.label}: no complete usage pull stored; close it with a pull"
                )
            rows, source, reason = stored.rows, stored.source, stored.fallback_reason
            orphans = UsageRecord.objects.filter(period=period.month, customer__isnull=True).count()
        if selectors.completed_pull(period) is None:
            raise CloseError(f"{period.label}: no complete usage pull; nothing is built")
        customer_ids = selectors.billed_customer_ids(period, run.customer_id)
        size = settings.CLOSE_SHARD_SIZE
        with transaction.atomic():
            if not renew():
                raise StageLost
            shards = CloseShard.objects.bulk_create(
                CloseShard(
                    run_id=run_id,
                    stage=CloseShardStage.BUILD,
                    index=i,
                    first_customer=chunk[0],
                    last_customer=chunk[-1],
                    customers=len(chunk),
                )
                for i, chunk in enumerate(
                    customer_ids[at : at + size] for at in range(0, len(customer_ids), size)
                )
            )
            state = CloseRunState.BUILDING if shards else CloseRunState.ISSUING
            seconds = dict(run.seconds)
            # The pull: from its start to the end of this step, its shards included.
            pulled = (timezone.now() - run.started_at).total_seconds() if run.pull else 0.0
            seconds["pull"] = round(max(pulled, time.monotonic() - started), 3)
            CloseRun.objects.filter(pk=run_id).update(
                state=state,
                rows=rows,
                orphans=orphans,
                source=source,
                fallback_reason=reason,
                customers=len(customer_ids),
                shards_total=len(shards),
                lease_until=None,
                seconds=seconds,
            )
            if not run.inline:
                if shards:
                    _enqueue_shards([s.pk for s in shards])
                else:
                    _enqueue_stage(run_id, CloseRunState.ISSUING)
    progress("customers", len(customer_ids))
    return True


def _plan_pull_shards(run: CloseRun, plan: sources.PullPlan, renew: Callable[[], int]) -> None:
    """Record the pull's parts as shards (and the pull they store into) and ask for them."""
    with transaction.atomic():
        if not renew():
            raise StageLost
        shards = CloseShard.objects.bulk_create(
            CloseShard(
                run_id=run.pk,
                stage=CloseShardStage.PULL,
                index=i,
                first_part=first,
                last_part=last,
            )
            for i, (first, last) in enumerate(plan.parts)
        )
        CloseRun.objects.filter(pk=run.pk).update(
            pull_generation=plan.generation,
            pull_fresh=plan.fresh,
            source=plan.source,
            fallback_reason=plan.fallback_reason,
            lease_until=None,
        )
        if not run.inline:
            _enqueue_shards([s.pk for s in shards])


class ShardFailed(Exception):
    """A shard's attempt failed (its cause is the error); recorded on the shard, which is
    pending again for a retry, or failed with its run when `final`."""

    def __init__(self, final: bool) -> None:
        super().__init__("final" if final else "retry")
        self.final = final


def run_shard(
    shard_id: int,
    *,
    client: SolusIOClient | None = None,
    progress: Progress = no_progress,
    max_attempts: int | None = None,
) -> bool:
    """Store one pull shard's usage or build one build shard's drafts. False when it is
    not this worker's (done, running elsewhere under a live lease, or its run is past its
    stage). A failure is recorded (fenced by this attempt: a superseded one records
    nothing) and raised as ShardFailed; the attempt that reaches `max_attempts`
    (CLOSE_SHARD_MAX_ATTEMPTS) fails the run. `client`: for a pull shard (else one is
    made from the settings)."""
    attempt = _claim_shard(shard_id)
    if attempt is None:
        return False
    try:
        shard = CloseShard.objects.select_related("run").get(pk=shard_id)
        if shard.stage == CloseShardStage.PULL:
            _pull_shard(shard, attempt, client, progress)
        else:
            _build_shard(shard, attempt, progress)
    except StageLost:
        raise
    except Exception as exc:
        final = attempt >= (max_attempts or settings.CLOSE_SHARD_MAX_ATTEMPTS)
        if not connection.needs_rollback:
            _shard_failed(shard_id, attempt, traceback.format_exc(), final=final)
        raise ShardFailed(final) from exc
    return True


# Every customer's id, as the run's pull shards in this process read it first.
_known: dict[tuple[int, datetime], frozenset[int]] = {}


def _known_customers(run: CloseRun) -> frozenset[int]:
    """Every customer's id, read once per run in this process rather than once per pull
    shard (200 shards of a million servers' pull, a read of every customer each). A
    customer created while the pull runs is not billed from it, as in a pull in one
    piece. Keyed by the run (PostgreSQL never hands out its id again; `run_inline`, the
    only way on SQLite, clears it)."""
    key = (run.pk, run.started_at)
    if key not in _known:
        _known.clear()  # only the latest run's
        _known[key] = frozenset(selectors.customer_ids())
    return _known[key]


def _pull_shard(
    shard: CloseShard, attempt: int, client: SolusIOClient | None, progress: Progress
) -> None:
    run = shard.run
    period = period_of(run)
    done = CloseShard.objects.filter(
        run=run, stage=CloseShardStage.PULL, state=CloseShardState.DONE
    )
    before = done.aggregate(n=Sum("rows"))["n"] or 0
    renew = _shard_renewal(shard.pk, attempt)
    rows_of_run = (
        CloseShard.objects.filter(run=run, stage=CloseShardStage.PULL)
        .values("run")
        .annotate(n=Sum("rows"))
        .values("n")
    )

    def record(stage: str, count: int) -> None:
        CloseShard.objects.filter(pk=shard.pk, attempts=attempt).update(rows=count)
        CloseRun.objects.filter(pk=run.pk).update(rows=Subquery(rows_of_run))

    step = _renewer(renew, record, lambda stage, count: progress(stage, before + count))
    assert run.pull_generation is not None
    assert shard.first_part is not None
    observed = run.source == "observed"
    with (
        db.period_lock(period, shared=True),
        nullcontext() if observed else given_or_own(client) as solusio,
    ):
        rows, orphans = sources.store_part(
            period=period,
            client=solusio,
            source=run.source,
            generation=run.pull_generation,
            fresh=run.pull_fresh,
            part=(shard.first_part, shard.last_part),
            progress=step,
            known=None if observed else _known_customers(run),
        )
    last = _shard_done(shard, attempt, rows=rows, orphans=orphans)
    if last is not None:
        # Every part is stored: the pull's end (its own claim) finishes it.
        CloseRun.objects.filter(pk=run.pk).update(rows=Subquery(rows_of_run))
        if not last.inline:
            _enqueue_stage(run.pk, CloseRunState.PULLING)


def _build_shard(shard: CloseShard, attempt: int, progress: Progress) -> None:
    run = shard.run
    period = period_of(run)
    before = (
        CloseShard.objects.filter(
            run=run, stage=CloseShardStage.BUILD, state=CloseShardState.DONE
        ).aggregate(n=Sum("customers"))["n"]
        or 0
    )
    renew = _shard_renewal(shard.pk, attempt)

    def record(stage: str, count: int) -> None:
        CloseShard.objects.filter(pk=shard.pk, attempts=attempt).update(built=count)

    step = _renewer(renew, record, lambda stage, count: progress(stage, before + count))
    summary = CloseSummary(period=period.label, dry_run=False)
    assert shard.first_customer is not None
    assert shard.last_customer is not None
    with db.period_lock(period, shared=True):
        customer_ids = selectors.billed_customer_ids(
            period, run.customer_id, between=(shard.first_customer, shard.last_customer)
        )
        build.build_customers(period, customer_ids, summary, step)
    _build_shard_done(shard, attempt, summary, len(customer_ids))


def _shard_renewal(shard_id: int, attempt: int) -> Callable[[], int]:
    def renew() -> int:
        return CloseShard.objects.filter(
            pk=shard_id, attempts=attempt, state=CloseShardState.RUNNING
        ).update(lease_until=_lease())

    return renew


def _build_shard_done(shard: CloseShard, attempt: int, summary: CloseSummary, built: int) -> None:
    with transaction.atomic():
        run = _shard_done(
            shard,
            attempt,
            built=built,
            **{name: getattr(summary, name) for name in SHARD_COUNTS},
        )
        if run is None or run.state != CloseRunState.BUILDING:
            return
        seconds = dict(run.seconds)
        seconds["build"] = round(
            (timezone.now() - run.started_at).total_seconds() - seconds.get("pull", 0), 3
        )
        CloseRun.objects.filter(pk=run.pk).update(
            state=CloseRunState.ISSUING, lease_until=None, seconds=seconds
        )
        if not run.inline:
            _enqueue_stage(run.pk, CloseRunState.ISSUING)


def _shard_done(shard: CloseShard, attempt: int, **outcome: int) -> CloseRun | None:
    """Record this attempt's shard as done with its `outcome`; StageLost when the attempt
    no longer holds it. Returns the run (its row locked until the caller's transaction
    ends) when this was the last shard of its stage to finish, else None."""
    with transaction.atomic():
        # The run's row first: shards finishing at once queue here, so exactly one of them
        # sees that none is left.
        run = CloseRun.objects.select_for_update().get(pk=shard.run_id)
        recorded = CloseShard.objects.filter(
            pk=shard.pk, attempts=attempt, state=CloseShardState.RUNNING
        ).update(
            state=CloseShardState.DONE,
            finished_at=timezone.now(),
            lease_until=None,
            error="",
            **outcome,
        )
        if not recorded:
            raise StageLost
        siblings = run.shards.filter(stage=shard.stage)
        return None if siblings.exclude(state=CloseShardState.DONE).exists() else run


def _shard_failed(shard_id: int, attempt: int, error: str, *, final: bool) -> None:
    """Record a shard's failure: back to pending for a retry, or failed (and its run
    with it) when it is out of attempts."""
    with transaction.atomic():
        shard = (
            CloseShard.objects.select_for_update(of=("self",))
            .select_related("run")
            .get(pk=shard_id)
        )
        if shard.state != CloseShardState.RUNNING or shard.attempts != attempt:
            return  # superseded: the shard is another attempt's now
        shard.error = error[-4000:]
        shard.lease_until = None
        shard.state = CloseShardState.FAILED if final else CloseShardState.PENDING
        shard.save(update_fields=["error", "lease_until", "state"])
        if final:
            run = CloseRun.objects.select_for_update().get(pk=shard.run_id)
            _fail(
                run,
                f"{shard.stage} shard {shard.index} ({shard.part}) failed after "
                f"{shard.attempts} attempts: {error.strip().splitlines()[-1]}",
            )


def _fail(run: CloseRun, error: str) -> None:
    if run.state not in ACTIVE_CLOSE_STATES:
        return
    CloseRun.objects.filter(pk=run.pk).update(
        state=CloseRunState.FAILED,
        error=error[-4000:],
        finished_at=timezone.now(),
        lease_until=None,
    )
    log.error("close run #%s of %s failed: %s", run.pk, run.period, error)


def fail_run(run_id: int, error: str) -> None:
    with transaction.atomic():
        _fail(CloseRun.objects.select_for_update().get(pk=run_id), error)


def issue_stage(run_id: int) -> bool:
    """Remove stale drafts, mark the drafts as the pull says, issue those that are ready
    and finish the run: one transaction holding the run's row, so it takes effect once.
    False when the run is not waiting for it (done already, or another worker has it)."""
    attempt = _claim_stage(run_id, CloseRunState.ISSUING)
    if attempt is None:
        return False
    run = CloseRun.objects.get(pk=run_id)
    period = period_of(run)
    started = time.monotonic()
    with db.period_lock(period), transaction.atomic():
        run = CloseRun.objects.select_for_update().get(pk=run_id)
        if run.state != CloseRunState.ISSUING or run.stage_attempts != attempt:
            return False
        removed = build.remove_stale_drafts(period, run.customer_id)
        sources.check_drafts(period, run.customer_id)
        issued = held = 0
        if run.auto_issue:
            drafts = Invoice.objects.filter(period=period.month, status=InvoiceStatus.DRAFT)
            if run.customer_id is not None:
                drafts = drafts.filter(customer_id=run.customer_id)
            # A draft with a SolusIO discrepancy, usage it cannot price, or usage from a
            # fallback source waits for staff.
            ready = Q(discrepancies=0, hold_reason="")
            held = drafts.exclude(ready).count()
            issued = issue_invoices(invoice_ids=drafts.filter(ready).values_list("id", flat=True))
        if run.customer_id is None:
            UsagePull.objects.filter(period=period.month).update(closed_at=timezone.now())
        totals = run.shards.aggregate(**{name: Sum(name) for name in SHARD_COUNTS})
        seconds = {**run.seconds, "issue": round(time.monotonic() - started, 3)}
        CloseRun.objects.filter(pk=run_id).update(
            state=CloseRunState.DONE,
            finished_at=timezone.now(),
            lease_until=None,
            removed=removed,
            issued=issued,
            held=held,
            seconds=seconds,
            **{name: totals[name] or 0 for name in SHARD_COUNTS},
        )
    metrics.record_close(summary_of(CloseRun.objects.get(pk=run_id), figures=False))
    return True


# --- Reading a run -------------------------------------------------------------------------


def summary_of(run: CloseRun, *, figures: bool = True) -> CloseSummary:
    period = period_of(run)
    summary = CloseSummary(
        period=period.label,
        dry_run=False,
        rows=run.rows,
        orphans=run.orphans,
        created=run.created,
        updated=run.updated,
        unchanged=run.unchanged,
        frozen=run.frozen,
        removed=run.removed,
        issued=run.issued,
        held=run.held,
        source=run.source,
        fallback_reason=run.fallback_reason,
        seconds=dict(run.seconds),
    )
    if figures:
        summary.figures = selectors.period_figures(period, run.customer_id)
    return summary


_BUILD_DONE = Q(shards__stage=CloseShardStage.BUILD, shards__state=CloseShardState.DONE)
_PULL_SHARDS = Q(shards__stage=CloseShardStage.PULL)


def runs() -> QuerySet[CloseRun]:
    """Runs, newest first, with `shards_done` (build shards), `built` (customers built),
    `pull_shards` and `pull_shards_done` annotated."""
    return CloseRun.objects.annotate(
        shards_done=Count("shards", filter=_BUILD_DONE),
        built=Coalesce(Sum("shards__built"), 0),
        pull_shards=Count("shards", filter=_PULL_SHARDS),
        pull_shards_done=Count(
            "shards", filter=_PULL_SHARDS & Q(shards__state=CloseShardState.DONE)
        ),
    ).order_by("-started_at", "-id")


def percent_done(run: CloseRun) -> int:
    """0–100: the pull counts for 40 (by pull shards), the build for 55 (by customers),
    issuing for 5."""
    if run.state == CloseRunState.DONE:
        return 100
    if run.state == CloseRunState.PULLING:
        total = getattr(run, "pull_shards", None)
        done = getattr(run, "pull_shards_done", None)
        if total is None or done is None:
            parts = run.shards.filter(stage=CloseShardStage.PULL)
            total, done = parts.count(), parts.filter(state=CloseShardState.DONE).count()
        return (40 * done) // total if total else 0
    if not run.customers:
        return 95
    built = getattr(run, "built", None)
    if built is None:
        built = built_so_far(run)
    return 40 + (55 * min(built, run.customers)) // run.customers


def built_so_far(run: CloseRun) -> int:
    """Customers whose drafts are built: done shards whole, running ones as far as they got."""
    return run.shards.aggregate(n=Sum("built"))["n"] or 0


def follow(run_id: int, *, every: float = 0.5, on_change: Callable[[CloseRun], None]) -> CloseRun:
    """Poll the run until it ends, calling `on_change` with each new state of it. It also
    sweeps (as beat does every minute) once a quarter of a lease, so a close followed by
    hand gets a lost shard back soon after its lease ran out."""
    seen: tuple[object, ...] = ()
    swept = time.monotonic()
    while True:
        if time.monotonic() - swept > settings.CLOSE_LEASE_SECONDS / 4:
            sweep()
            swept = time.monotonic()
        run = CloseRun.objects.get(pk=run_id)
        now = (run.state, run.rows, built_so_far(run), run.issued)
        if now != seen:
            seen = now
            on_change(run)
        if run.state not in ACTIVE_CLOSE_STATES:
            return run
        time.sleep(every)


# --- The sweep -----------------------------------------------------------------------------


def sweep() -> int:
    """Ask again for every stage of a submitted run that lost its worker or its message:
    a pull or issuing step or a running shard whose lease ran out; a stage never claimed
    (a pending shard, a pull or issuing step without a lease) when nothing waits in the
    close queue. Returns how many messages it sent."""
    from bridge.queues import backlog

    now = timezone.now()
    sent = 0
    # Never claimed: lost only if nothing waits in the queue (or it may be on its way).
    queue_empty = backlog(settings.CLOSE_QUEUE) == 0  # False too when the broker cannot tell
    unclaimed = Q(lease_until__isnull=True) if queue_empty else Q(pk__in=[])
    active = CloseRun.objects.filter(state__in=ACTIVE_CLOSE_STATES, inline=False)
    # A pull whose shards are not all done is asked for by the last of them.
    pulling = CloseShard.objects.filter(run=OuterRef("pk"), stage=CloseShardStage.PULL).exclude(
        state=CloseShardState.DONE
    )
    for run in (
        active.filter(unclaimed | Q(lease_until__lt=now))
        .exclude(state=CloseRunState.BUILDING)
        .exclude(Exists(pulling), state=CloseRunState.PULLING)
    ):
        with transaction.atomic():
            _enqueue_stage(run.pk, run.state)
        sent += 1
    expired = Q(state=CloseShardState.RUNNING, lease_until__lt=now)
    lost = Q(state=CloseShardState.PENDING) if queue_empty else Q(pk__in=[])
    stale = list(
        CloseShard.objects.filter(expired | lost, _IN_ITS_STAGE, run__inline=False).values_list(
            "id", flat=True
        )
    )
    if stale:
        with transaction.atomic():
            _enqueue_shards(stale)
        sent += len(stale)
    return sent


@contextmanager
def inline_run(
    *,
    period: Period,
    customer_id: int | None,
    pull: bool,
    auto_issue: bool | None,
) -> Iterator[CloseRun]:
    """A run recorded and closed in this process, under the period's lock; a failure
    marks it failed (with its error) before it propagates."""
    with db.period_lock(period):
        run = start(
            period=period, customer_id=customer_id, pull=pull, auto_issue=auto_issue, inline=True
        )
        try:
            yield run
        except BaseException as exc:
            if not connection.in_atomic_block or not connection.needs_rollback:
                fail_run(run.pk, f"{type(exc).__name__}: {exc}")
            raise
