"""Reconciliation: compare every SolusIO user with the customers and report the differences;
`fix` queues syncs from our side (the billing database is the master). Nothing in SolusIO is
ever deleted here."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from solusio.connect import solusio_client
from solusio.records import User
from users import services
from users.models import (
    Customer,
    ReconcileRun,
    ReconcileRunState,
    SyncRecord,
    SyncRecordState,
)

log = logging.getLogger(__name__)

# A queued or running reconciliation older than this is taken for dead (a worker killed
# mid-run): it no longer stops staff from asking for a new one. The task's hard limit.
RUN_STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Drift:
    customer_id: int
    solusio_user_id: int
    field: str
    ours: object
    theirs: object


@dataclass
class ReconcileReport:
    solusio_users: int = 0
    customers: int = 0
    unknown_users: list[User] = field(default_factory=list)  # no matching customer
    missing: list[int] = field(default_factory=list)  # customer ids with no SolusIO user
    drift: list[Drift] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)  # billing ids on several users
    in_flight: int = 0  # customers skipped: a change is on its way
    fixed: list[int] = field(default_factory=list)  # customers queued for sync

    def counts(self) -> dict[str, int]:
        return {
            "solusio_users": self.solusio_users,
            "customers": self.customers,
            "unknown_users": len(self.unknown_users),
            "missing": len(self.missing),
            "drift": len(self.drift),
            "duplicates": len(self.duplicates),
            "in_flight": self.in_flight,
            "fixed": len(self.fixed),
        }

    @property
    def clean(self) -> bool:
        return not (self.unknown_users or self.missing or self.drift or self.duplicates)

    def lines(self) -> list[str]:
        out = [
            f"{self.solusio_users} SolusIO users, {self.customers} customers, "
            f"{self.in_flight} with a change on its way (skipped)"
        ]
        for user in self.unknown_users:
            out.append(
                f"SolusIO user {user.id} <{user.email}> has no customer "
                f"(billing_user_id {user.billing_user_id}); left alone"
            )
        out.extend(f"customer {cid} has no SolusIO user" for cid in self.missing)
        out.extend(
            f"customer {d.customer_id} (SolusIO user {d.solusio_user_id}): {d.field} "
            f"is {d.theirs!r} in SolusIO, {d.ours!r} here"
            for d in self.drift
        )
        out.extend(f"billing user id {b} is on several SolusIO users" for b in self.duplicates)
        if self.fixed:
            out.append(f"queued {len(self.fixed)} customers for sync from the billing side")
        return out


def reconcile(*, fix: bool) -> ReconcileReport:
    report = ReconcileReport()
    by_billing_id: dict[int, User] = {}
    with solusio_client() as client:
        for user in client.iter_users():
            report.solusio_users += 1
            if user.billing_user_id is None:
                report.unknown_users.append(user)
            elif user.billing_user_id in by_billing_id:
                report.duplicates.append(user.billing_user_id)
            else:
                by_billing_id[user.billing_user_id] = user
    open_records = SyncRecord.objects.filter(customer_id=OuterRef("pk")).exclude(
        state=SyncRecordState.DONE
    )
    customers = (
        Customer.objects.annotate(in_flight=Exists(open_records))
        .values_list("pk", "status", "limit_group_id", "in_flight")
        .order_by("pk")
    )
    to_fix: list[int] = []
    for customer_id, status, limit_group_id, in_flight in customers.iterator(chunk_size=2000):
        report.customers += 1
        found = by_billing_id.pop(customer_id, None)
        if in_flight:
            # SolusIO will change shortly anyway; comparing now would report noise.
            report.in_flight += 1
            continue
        if found is None:
            report.missing.append(customer_id)
            to_fix.append(customer_id)
            continue
        drifted = False
        if found.status != status:
            report.drift.append(Drift(customer_id, found.id, "status", status, found.status))
            drifted = True
        if limit_group_id is not None and found.limit_group_id != limit_group_id:
            report.drift.append(
                Drift(customer_id, found.id, "limit_group", limit_group_id, found.limit_group_id)
            )
            drifted = True
        if drifted:
            to_fix.append(customer_id)
    # Whatever is left carries a billing id no customer has.
    report.unknown_users.extend(by_billing_id.values())
    report.unknown_users.sort(key=lambda u: u.id)
    if fix:
        for customer_id in to_fix:
            try:
                services.resync_customer(customer_id=customer_id, reason="reconciliation")
            except Customer.DoesNotExist:
                continue  # deleted while we compared
            report.fixed.append(customer_id)
    return report


# --- recorded runs: what the admin shows ---------------------------------------------


# The advisory lock request_run takes: a fixed 64-bit key of its own.
_REQUEST_LOCK = int.from_bytes(
    hashlib.sha256(b"users.reconcile.request_run").digest()[:8], "big"
) - (1 << 63)


def request_run(*, fix: bool, trigger: str) -> tuple[ReconcileRun, bool]:
    """Queue a reconciliation for a worker; (run, True), or (the open run, False) when one
    is queued or running already. A run whose message the broker refused is marked
    failed at once, with the reason."""
    from users.tasks import reconcile as reconcile_task

    stale = timezone.now() - RUN_STALE_AFTER
    with transaction.atomic():
        # Two requests at the same instant (a double click, beat and staff) must not both
        # find no open run: they take turns here (SQLite serialises writers by itself).
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REQUEST_LOCK])
        open_run = (
            ReconcileRun.objects.filter(
                state__in=[ReconcileRunState.QUEUED, ReconcileRunState.RUNNING],
                requested_at__gte=stale,
            )
            .order_by("-id")
            .first()
        )
        if open_run is not None:
            return open_run, False
        run = ReconcileRun.objects.create(fix=fix, trigger=trigger[:160])

    def send() -> None:
        try:
            reconcile_task.apply_async(
                kwargs={"fix": fix, "run_id": run.pk},
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
            )
        except Exception as exc:  # noqa: BLE001 - any broker failure: say so on the run
            log.warning("reconcile: could not enqueue run %s (%s)", run.pk, exc)
            _finish(
                run, state=ReconcileRunState.FAILED, error=f"Could not reach the workers: {exc}"
            )

    # The worker must find the run committed.
    transaction.on_commit(send)
    return run, True


def run_recorded(
    *, fix: bool, trigger: str, run_id: int | None = None
) -> tuple[ReconcileRun, ReconcileReport] | None:
    """Reconcile and store the report on a run: the queued run `run_id`, or a new one.

    None when `run_id` is not queued any more (a duplicate delivery of its message): a run
    is claimed once. A failure is stored on the run, then raised.
    """
    now = timezone.now()
    if run_id is None:
        run = ReconcileRun.objects.create(
            fix=fix, trigger=trigger[:160], state=ReconcileRunState.RUNNING, started_at=now
        )
    else:
        claimed = ReconcileRun.objects.filter(pk=run_id, state=ReconcileRunState.QUEUED).update(
            state=ReconcileRunState.RUNNING, started_at=now
        )
        if not claimed:
            return None
        run = ReconcileRun.objects.get(pk=run_id)
    try:
        report = reconcile(fix=run.fix)
    except Exception as exc:
        _finish(run, state=ReconcileRunState.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    _finish(run, state=ReconcileRunState.DONE, counts=report.counts(), details=report.lines())
    return run, report


def _finish(
    run: ReconcileRun,
    *,
    state: str,
    error: str = "",
    counts: dict[str, int] | None = None,
    details: list[str] | None = None,
) -> None:
    run.state = state
    run.finished_at = timezone.now()
    run.error = error[:2000]
    run.counts = counts or {}
    run.details = details or []
    run.save(update_fields=["state", "finished_at", "error", "counts", "details"])
