"""The SolusIO user sync: a transactional outbox and its delivery (Step 8).

- `record_change` / `record_delete` run inside the transaction that changes the customer
  and write a `SyncRecord`; delivery is requested with `transaction.on_commit`, so a
  rolled-back change never reaches SolusIO and a committed one is never lost: if the broker
  or the worker is down, `sweep` (beat, every minute) requests it again later.
- `deliver_pending` delivers one customer's records in id order. The oldest open record is
  claimed with `SELECT … FOR UPDATE SKIP LOCKED`, so two workers never deliver the same
  record, and nobody skips ahead of a record another worker is delivering. The lock is held
  through the HTTP call: a worker killed mid-delivery rolls back and the record stays open.
- A record carries the whole desired user, so delivering it again (a retry, a duplicate
  task, a redelivery after a crash) sets the same values again; a create whose answer was
  lost links the user it made (`create_or_link_user` looks the e-mail up first).
- Transient SolusIO failures leave the record open with a growing delay; permanent ones
  (422 and other 4xx) park it with SolusIO's message until staff retry it. A parked record
  holds back the customer's later records: applying them out of order could undo them.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from solusio.connect import is_configured, thread_client
from solusio.errors import NotFound, RateLimited, SolusIOError
from solusio.records import User
from users.models import (
    Customer,
    SolusioAccount,
    SyncAction,
    SyncRecord,
    SyncRecordState,
    SyncState,
)

log = logging.getLogger(__name__)


# --- What SolusIO should have ---------------------------------------------------------------


def desired_user(customer: Customer) -> dict[str, Any]:
    """The SolusIO user a customer maps to (billing_user_id = customer id)."""
    user: dict[str, Any] = {
        "email": customer.email,
        "status": customer.status,
        "billing_user_id": customer.pk,
        "limit_group_id": customer.limit_group_id,
    }
    if settings.SOLUSIO_USER_LANGUAGE_ID:
        user["language_id"] = settings.SOLUSIO_USER_LANGUAGE_ID
    if settings.SOLUSIO_USER_ROLE_IDS:
        user["roles"] = list(settings.SOLUSIO_USER_ROLE_IDS)
    return user


# --- Writing the outbox (inside the caller's transaction) --------------------------------------


def record_change(*, customer: Customer, action: str, reason: str) -> SyncRecord:
    return _record(customer.pk, action, desired_user(customer), reason)


def record_delete(*, customer_id: int, snapshot: dict[str, Any], reason: str) -> SyncRecord:
    return _record(customer_id, SyncAction.DELETE, snapshot, reason)


def _record(customer_id: int, action: str, payload: dict[str, Any], reason: str) -> SyncRecord:
    record = SyncRecord.objects.create(
        customer_id=customer_id, action=action, payload=payload, reason=reason[:255]
    )
    _, created = SolusioAccount.objects.get_or_create(customer_id=customer_id)
    if not created:
        # An UPDATE, not a read-then-write: it waits for a delivery committing "synced"
        # on this row, then applies on top of it. A parked account stays parked (its
        # head record still blocks this one).
        SolusioAccount.objects.filter(pk=customer_id).exclude(state=SyncState.PARKED).update(
            state=SyncState.PENDING
        )
    _request_delivery(customer_id)
    return record


# Customers whose delivery the current transaction will request when it commits. One
# on_commit callback per transaction sends them in tasks of SOLUSIO_SYNC_TASK_BATCH, so an
# import of 10,000 customers is 400 messages, not 10,000.
_batch = threading.local()


def _request_delivery(customer_id: int) -> None:
    conn = transaction.get_connection()
    if not conn.in_atomic_block:  # autocommit: the record is committed already
        enqueue(customer_id)
        return
    pending: list[int] | None = getattr(_batch, "ids", None)
    registered = pending is not None and any(
        entry[1] is _flush_batch for entry in conn.run_on_commit
    )
    if not registered:
        # Ids left from a transaction that rolled back go: their records went with it.
        _batch.ids = pending = []
        transaction.on_commit(_flush_batch)
    assert pending is not None
    pending.append(customer_id)


def _flush_batch() -> None:
    ids = list(dict.fromkeys(getattr(_batch, "ids", None) or []))
    _batch.ids = None
    enqueue_many(ids)


def enqueue(customer_id: int) -> bool:
    return enqueue_many([customer_id])


def enqueue_many(customer_ids: list[int]) -> bool:
    """Ask workers to deliver these customers' records. False when the broker is down: the
    records are safe in the database and the sweep will ask again."""
    from users.tasks import deliver_customers

    size = max(1, settings.SOLUSIO_SYNC_TASK_BATCH)
    for start in range(0, len(customer_ids), size):
        chunk = customer_ids[start : start + size]
        try:
            deliver_customers.apply_async(
                (chunk,),
                queue=settings.SOLUSIO_SYNC_QUEUE,
                # Fail fast when the broker is down: the caller may be a web request, and
                # the sweep is the retry.
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
            )
        except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep will do it
            log.warning(
                "user sync: could not enqueue %d customers (%s); the sweep will",
                len(customer_ids) - start,
                exc,
            )
            return False
    return True


# --- Delivery --------------------------------------------------------------------------------


class Step(enum.Enum):
    DELIVERED = "delivered"  # one record delivered; there may be more
    IDLE = "idle"  # nothing open for this customer
    BUSY = "busy"  # another worker is delivering its head record
    WAIT = "wait"  # the head record failed transiently and waits for its next attempt
    PARKED = "parked"  # the head record needs staff
    IDLE_AFTER_DELIVERY = "idle-after"  # delivered the customer's last open record


@dataclass
class DeliveryResult:
    delivered: int = 0
    stopped: Step = Step.IDLE
    retry_in: float | None = None  # seconds until the head record may be tried again


def deliver_pending(*, customer_id: int, limit: int = 100) -> DeliveryResult:
    """Deliver the customer's open records, oldest first, until one cannot be."""
    result = DeliveryResult()
    for _ in range(limit):
        step, retry_in = deliver_next(customer_id=customer_id)
        if step is Step.DELIVERED:
            result.delivered += 1
            continue
        if step is Step.IDLE_AFTER_DELIVERY:
            result.delivered += 1
            step = Step.IDLE
        result.stopped, result.retry_in = step, retry_in
        break
    return result


# The hot path in SQL: a sync of 10,000 new customers is mostly these two statements
# (docs/performance.md), where the ORM took nine round trips per record.
_CLAIM = """
SELECT r.id, r.action, r.payload, r.attempts, a.customer_id IS NOT NULL, a.solusio_user_id
FROM users_syncrecord r
LEFT JOIN users_solusioaccount a ON a.customer_id = r.customer_id
WHERE r.id = (
    SELECT min(o.id) FROM users_syncrecord o
    WHERE o.customer_id = %(customer)s AND o.state <> 'done'
)
  AND r.state = 'pending'
  AND (r.next_attempt_at IS NULL OR r.next_attempt_at <= %(now)s)
FOR UPDATE OF r SKIP LOCKED
"""
# Mark the record delivered and settle the account in one statement; returns whether the
# customer has more open records.
_DONE = """
WITH done AS (
    UPDATE users_syncrecord
    SET state = 'done', delivered_at = %(now)s, attempts = attempts + 1, last_error = ''
    WHERE id = %(record)s
    RETURNING id
), more AS (
    SELECT EXISTS (
        SELECT 1 FROM users_syncrecord
        WHERE customer_id = %(customer)s AND state <> 'done' AND id <> %(record)s
    ) AS more
)
UPDATE users_solusioaccount
SET solusio_user_id = %(user)s, last_error = '', last_synced_at = %(now)s,
    state = CASE WHEN (SELECT more FROM more) THEN 'pending' ELSE 'synced' END
WHERE customer_id = %(customer)s
RETURNING (SELECT more FROM more), (SELECT count(*) FROM done)
"""


def _claim_orm(customer_id: int, now: datetime) -> tuple[Any, ...] | None:
    """_CLAIM for databases other than PostgreSQL (SQLite, the embedded run, where writers
    are serialised by the database anyway)."""
    head = (
        SyncRecord.objects.filter(customer_id=customer_id)
        .exclude(state=SyncRecordState.DONE)
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )
    if head is None:
        return None
    record = (
        SyncRecord.objects.select_for_update(skip_locked=True)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(pk=head, state=SyncRecordState.PENDING)
        .values_list("id", "action", "payload", "attempts")
        .first()
    )
    if record is None:
        return None
    account = SolusioAccount.objects.filter(pk=customer_id).values_list("solusio_user_id")
    link = account.first()
    return (*record, link is not None, link[0] if link else None)


def _done_orm(*, now: datetime, record: int, customer: int, user: int | None) -> bool:
    """_DONE for databases other than PostgreSQL."""
    SyncRecord.objects.filter(pk=record).update(
        state=SyncRecordState.DONE, delivered_at=now, attempts=F("attempts") + 1, last_error=""
    )
    more = (
        SyncRecord.objects.filter(customer_id=customer).exclude(state=SyncRecordState.DONE).exists()
    )
    SolusioAccount.objects.filter(pk=customer).update(
        solusio_user_id=user,
        last_error="",
        last_synced_at=now,
        state=SyncState.PENDING if more else SyncState.SYNCED,
    )
    return more


_warned_unconfigured = False


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def deliver_next(*, customer_id: int) -> tuple[Step, float | None]:
    global _warned_unconfigured
    if not is_configured():
        # The records wait (nothing is lost); the sweep asks again once SolusIO is set.
        if not _warned_unconfigured:
            log.warning("user sync: SOLUSIO_API_URL/TOKEN are not set; changes wait")
            _warned_unconfigured = True
        return Step.WAIT, None
    now = timezone.now()
    postgres = _postgres()
    try:
        with transaction.atomic():
            # Claim the customer's oldest open record if it is due and nobody holds it.
            # Never a later one (SKIP LOCKED on the whole set would skip ahead of a record
            # another worker is delivering). The state is re-checked under the lock, so a
            # record another worker just delivered is not delivered again.
            if postgres:
                with connection.cursor() as cursor:
                    cursor.execute(_CLAIM, {"customer": customer_id, "now": now})
                    row = cursor.fetchone()
            else:
                row = _claim_orm(customer_id, now)
            if row is None:
                return _why_not(customer_id, now)
            record_id, action, payload, attempts, has_account, user_id = row
            record = SyncRecord(
                id=record_id,
                customer_id=customer_id,
                action=action,
                payload=json.loads(payload) if isinstance(payload, str) else payload,
                attempts=attempts,
                state=SyncRecordState.PENDING,
            )
            if not has_account:  # written with the record; only missing for old rows
                SolusioAccount.objects.get_or_create(customer_id=customer_id)
            # Not locked: only the holder of the head record writes these fields, and the
            # outbox writers only touch `state`.
            account = SolusioAccount(customer_id=customer_id, solusio_user_id=user_id)
            try:
                _apply(record, account)
            except SolusIOError as exc:
                if exc.retryable:
                    return Step.WAIT, _retry_later(record, account, exc)
                _park(record, account, exc)
                return Step.PARKED, None
            done = {
                "now": timezone.now(),
                "record": record_id,
                "customer": customer_id,
                "user": account.solusio_user_id,
            }
            if postgres:
                with connection.cursor() as cursor:
                    cursor.execute(_DONE, done)
                    more = cursor.fetchone()[0]
            else:
                more = _done_orm(**done)
            if not more and action == SyncAction.DELETE:
                # The customer is gone and so is its SolusIO user: the link goes too.
                SolusioAccount.objects.filter(pk=customer_id, solusio_user_id__isnull=True).delete()
    except IntegrityError as exc:
        # The link is unique: another customer is already linked to this SolusIO user (two
        # e-mails SolusIO treats as one). The transaction is gone; park in a new one.
        with transaction.atomic():
            record = SyncRecord.objects.select_for_update().get(pk=record_id)
            account = SolusioAccount.objects.get(pk=customer_id)
            _park(record, account, exc)
        return Step.PARKED, None
    return (Step.DELIVERED if more else Step.IDLE_AFTER_DELIVERY), None


def _why_not(customer_id: int, now: datetime) -> tuple[Step, float | None]:
    head = (
        SyncRecord.objects.filter(customer_id=customer_id)
        .exclude(state=SyncRecordState.DONE)
        .order_by("id")
        .values("state", "next_attempt_at")
        .first()
    )
    if head is None:
        return Step.IDLE, None
    if head["state"] == SyncRecordState.PARKED:
        return Step.PARKED, None
    if head["next_attempt_at"] is not None and head["next_attempt_at"] > now:
        return Step.WAIT, (head["next_attempt_at"] - now).total_seconds()
    return Step.BUSY, None


def _apply(record: SyncRecord, account: SolusioAccount) -> None:
    """Make SolusIO match the record. Safe to repeat."""
    # One attempt per call: a transient failure goes back to the outbox with its delay
    # (a 429's Retry-After included), and this thread moves on to other customers instead
    # of sleeping through it.
    # A write that may still be running in SolusIO (timed out, 504) is not sent again at
    # once either: the retry and this customer's next change could land before it does.
    client = thread_client(
        max_attempts=settings.SOLUSIO_SYNC_CALL_ATTEMPTS,
        wait_on_rate_limit=False,
        retry_unfinished_writes=False,
    )
    payload = record.payload
    if record.action == SyncAction.DELETE:
        user_id = account.solusio_user_id
        if user_id is None:
            found = client.find_user_by_email(payload["email"])
            # Only a user linked to this customer is ours to delete.
            if found is not None and found.billing_user_id == record.customer_id:
                user_id = found.id
        if user_id is not None:
            # NotFound: deleted already, by an earlier attempt whose answer was lost.
            with contextlib.suppress(NotFound):
                client.delete_user(user_id)
        account.solusio_user_id = None
        return
    fields = {k: v for k, v in payload.items() if k != "email"}
    if account.solusio_user_id is not None:
        try:
            client.update_user(account.solusio_user_id, email=payload["email"], **fields)
            return
        except NotFound:
            log.warning(
                "user sync: SolusIO user %s of customer %s is gone; creating it again",
                account.solusio_user_id,
                record.customer_id,
            )
            account.solusio_user_id = None
    linked = client.create_or_link_user(
        # New customers are the common case: create first; SolusIO's "e-mail taken" (or a
        # lost answer) leads to the look-up and link, so a repeat still makes no second user.
        look_first=False,
        email=payload["email"],
        billing_user_id=payload["billing_user_id"],
        status=payload["status"],
        limit_group_id=payload.get("limit_group_id"),
        language_id=payload.get("language_id"),
        roles=payload.get("roles"),
    )
    account.solusio_user_id = linked.user.id
    if not linked.created and not _matches(linked.user, payload):
        # An existing user was linked: bring it to our state (we are the master).
        client.update_user(linked.user.id, **fields)


def _matches(user: User, payload: dict[str, Any]) -> bool:
    # Language and roles are not in the parsed user; re-sending them is harmless.
    if "language_id" in payload or "roles" in payload:
        return False
    return (
        user.status == payload["status"]
        and user.billing_user_id == payload["billing_user_id"]
        and (
            payload.get("limit_group_id") is None
            or user.limit_group_id == payload["limit_group_id"]
        )
    )


def _retry_later(record: SyncRecord, account: SolusioAccount, exc: Exception) -> float:
    record.attempts += 1
    base = settings.SOLUSIO_SYNC_RETRY_BASE
    ceiling = min(settings.SOLUSIO_SYNC_RETRY_MAX, base * 2 ** min(record.attempts - 1, 20))
    delay = ceiling / 2 + random.random() * ceiling / 2  # jitter: failed together, back apart
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        delay = max(delay, exc.retry_after)  # SolusIO said when
    record.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    record.last_error = str(exc)[:2000]
    record.save(update_fields=["attempts", "next_attempt_at", "last_error"])
    account.last_error = f"retrying: {record.last_error}"
    account.save(update_fields=["last_error"])
    log.warning(
        "user sync: record %s of customer %s failed (%s); retry in %.1f s",
        record.pk,
        record.customer_id,
        exc,
        delay,
    )
    return delay


def _park(record: SyncRecord, account: SolusioAccount, exc: Exception) -> None:
    record.attempts += 1
    record.state = SyncRecordState.PARKED
    record.last_error = str(exc)[:2000]
    record.save(update_fields=["attempts", "state", "last_error"])
    account.state = SyncState.PARKED
    account.last_error = record.last_error
    account.save(update_fields=["state", "last_error"])
    log.error("user sync: record %s of customer %s parked: %s", record.pk, record.customer_id, exc)


def _queue_backlog() -> int | None:
    """Messages waiting in the sync queue; None when the broker cannot tell."""
    from bridge.queues import backlog

    return backlog(settings.SOLUSIO_SYNC_QUEUE)


# --- Staff and beat ------------------------------------------------------------------------


def retry_parked(
    *, record_ids: list[int] | None = None, customer_ids: list[int] | None = None
) -> int:
    """Put parked records back in the queue (after staff fixed the cause)."""
    records = SyncRecord.objects.filter(state=SyncRecordState.PARKED)
    if record_ids is not None:
        records = records.filter(pk__in=record_ids)
    if customer_ids is not None:
        records = records.filter(customer_id__in=customer_ids)
    with transaction.atomic():
        customers = sorted(set(records.values_list("customer_id", flat=True)))
        count = records.update(state=SyncRecordState.PENDING, next_attempt_at=None)
        SolusioAccount.objects.filter(pk__in=customers).update(state=SyncState.PENDING)
        for customer_id in customers:
            transaction.on_commit(lambda c=customer_id: enqueue(c))  # type: ignore[misc]
    return count


def sweep(*, limit: int = 10_000) -> int:
    """Request delivery for customers whose open records nobody seems to be delivering:
    due for a retry, or older than SOLUSIO_SYNC_SWEEP_AFTER (their message was lost).

    Skipped while the sync queue holds a backlog: those records are not lost, only
    waiting, and sending them again would double the workers' work when they are behind.
    """
    backlog = _queue_backlog()
    if backlog is not None and backlog > settings.SOLUSIO_SYNC_SWEEP_MAX_BACKLOG:
        log.info("user sync: %d messages queued; the sweep waits for the workers", backlog)
        return 0
    now = timezone.now()
    stale = now - timedelta(seconds=settings.SOLUSIO_SYNC_SWEEP_AFTER)
    due = (
        SyncRecord.objects.filter(state=SyncRecordState.PENDING)
        .filter(
            Q(next_attempt_at__isnull=True, created_at__lte=stale) | Q(next_attempt_at__lte=now)
        )
        .values("customer_id")
        .annotate(first=Min("id"))
        .order_by("first")[:limit]
    )
    customer_ids = [row["customer_id"] for row in due]
    if not enqueue_many(customer_ids):
        return 0  # broker down: the next sweep tries again
    return len(customer_ids)
