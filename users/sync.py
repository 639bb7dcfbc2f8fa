"""The SolusIO user sync: the customer outbox and its delivery. A record carries the whole
desired user, so delivering it twice is harmless; one customer's records go in order, and a
parked one holds back the rest (docs/architecture.md, Outboxes)."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, QuerySet, Subquery
from django.utils import timezone

from bridge.outbox import Outbox, Outcome, Step
from bridge.sql import render
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
    outbox.request_delivery([customer_id])
    return record


outbox: Outbox[SyncRecord] = Outbox(
    label="user sync",
    model=SyncRecord,
    key="customer_id",
    task="users.tasks.deliver_customers",
    settings_prefix="SOLUSIO_SYNC",
    pending=SyncRecordState.PENDING,
    parked=SyncRecordState.PARKED,
)
sweep = outbox.sweep


# --- Delivery --------------------------------------------------------------------------------


@dataclass
class DeliveryResult:
    delivered: int = 0
    stopped: Step = Step.IDLE
    retry_in: float | None = None  # seconds until the head record may be tried again


def deliver_pending(*, customer_id: int, limit: int = 100) -> DeliveryResult:
    """Deliver the customer's open records, oldest first, until one cannot be."""
    result = DeliveryResult()
    for _ in range(limit):
        outcome = deliver_next(customer_id=customer_id)
        if outcome.step is Step.DELIVERED:
            result.delivered += 1
            if outcome.more:
                continue
            result.stopped = Step.IDLE
            break
        result.stopped, result.retry_in = outcome.step, outcome.retry_in
        break
    return result


def _open_records(customer_id: int) -> QuerySet[SyncRecord]:
    return SyncRecord.objects.filter(customer_id=customer_id).exclude(state=SyncRecordState.DONE)


# PostgreSQL runs the claim and the delivered step as two statements of SQL: measured with
# 1,000 records on the 2-core machine, claim + done took 7 ms a record that way and 18 ms
# as the ORM's four statements (query building is most of it), and the sync is CPU-bound
# there (docs/performance.md). SQLite (the embedded run) takes the ORM path; the tests
# marked `both_databases` run both.
_CLAIM = """
SELECT r.{r.id}, r.{r.action}, r.{r.payload}, r.{r.attempts}, a.{a.customer} IS NOT NULL,
       a.{a.solusio_user_id}
FROM {r} r
LEFT JOIN {a} a ON a.{a.customer} = r.{r.customer_id}
WHERE r.{r.id} = (
    SELECT min(o.{r.id}) FROM {r} o
    WHERE o.{r.customer_id} = %(customer)s AND o.{r.state} <> %(done)s
)
  AND r.{r.state} = %(pending)s
  AND (r.{r.next_attempt_at} IS NULL OR r.{r.next_attempt_at} <= %(now)s)
FOR UPDATE OF r SKIP LOCKED
"""
# Mark the record delivered and settle the account in one statement; returns whether the
# customer has more open records.
_DONE = """
WITH done AS (
    UPDATE {r}
    SET {r.state} = %(done)s, {r.delivered_at} = %(now)s, {r.attempts} = {r.attempts} + 1,
        {r.last_error} = ''
    WHERE {r.id} = %(record)s
    RETURNING {r.id}
), more AS (
    SELECT EXISTS (
        SELECT 1 FROM {r}
        WHERE {r.customer_id} = %(customer)s AND {r.state} <> %(done)s AND {r.id} <> %(record)s
    ) AS more
)
UPDATE {a}
SET {a.solusio_user_id} = %(user)s, {a.last_error} = '', {a.last_synced_at} = %(now)s,
    {a.state} = CASE WHEN (SELECT more FROM more) THEN %(account_pending)s ELSE %(synced)s END
WHERE {a.customer} = %(customer)s
RETURNING (SELECT more FROM more), (SELECT count(*) FROM done)
"""
_STATES: dict[str, str] = {
    "done": SyncRecordState.DONE.value,
    "pending": SyncRecordState.PENDING.value,
    "account_pending": SyncState.PENDING.value,
    "synced": SyncState.SYNCED.value,
}


def _sql(template: str) -> str:
    return render(template, r=SyncRecord, a=SolusioAccount)


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _claim(customer_id: int, now: datetime) -> tuple[Any, ...] | None:
    """The customer's oldest open record if it is pending, due and nobody holds it, with
    the account's link."""
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute(_sql(_CLAIM), {"customer": customer_id, "now": now, **_STATES})
            return cursor.fetchone()
    head = _open_records(customer_id).order_by("id").values("id")[:1]
    account = SolusioAccount.objects.filter(pk=customer_id)
    return (
        outbox.claim(SyncRecord.objects.filter(pk=Subquery(head)), now)
        .annotate(
            has_account=Exists(account),
            user_id=Subquery(account.values("solusio_user_id")),
        )
        .values_list("id", "action", "payload", "attempts", "has_account", "user_id")
        .first()
    )


def _done(*, now: datetime, record: int, customer: int, user: int | None) -> bool:
    """Mark the record delivered and settle the account; returns whether the customer has
    more open records."""
    if _postgres():
        params: dict[str, Any] = {"now": now, "record": record, "customer": customer, "user": user}
        with connection.cursor() as cursor:
            cursor.execute(_sql(_DONE), {**params, **_STATES})
            return bool(cursor.fetchone()[0])
    SyncRecord.objects.filter(pk=record).update(
        state=SyncRecordState.DONE, delivered_at=now, attempts=F("attempts") + 1, last_error=""
    )
    more = _open_records(customer).exists()
    SolusioAccount.objects.filter(pk=customer).update(
        solusio_user_id=user,
        last_error="",
        last_synced_at=now,
        state=SyncState.PENDING if more else SyncState.SYNCED,
    )
    return more


_warned_unconfigured = False


def deliver_next(*, customer_id: int) -> Outcome:
    global _warned_unconfigured
    if not is_configured():
        # The records wait (nothing is lost); the sweep asks again once SolusIO is set.
        if not _warned_unconfigured:
            log.warning("user sync: SOLUSIO_API_URL/TOKEN are not set; changes wait")
            _warned_unconfigured = True
        return Outcome(Step.WAIT)
    now = timezone.now()
    try:
        with transaction.atomic():
            # Claim the customer's oldest open record if it is due and nobody holds it.
            # Never a later one (SKIP LOCKED on the whole set would skip ahead of a record
            # another worker is delivering). The state is re-checked under the lock, so a
            # record another worker just delivered is not delivered again.
            row = _claim(customer_id, now)
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
                    return Outcome(Step.WAIT, retry_in=_retry_later(record, account, exc))
                _park(record, account, exc)
                return Outcome(Step.PARKED)
            more = _done(
                now=timezone.now(),
                record=record_id,
                customer=customer_id,
                user=account.solusio_user_id,
            )
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
        return Outcome(Step.PARKED)
    return Outcome(Step.DELIVERED, more=more)


def _why_not(customer_id: int, now: datetime) -> Outcome:
    head = _open_records(customer_id).order_by("id").values("state", "next_attempt_at").first()
    if head is None:
        return Outcome(Step.IDLE)
    if head["state"] == SyncRecordState.PARKED:
        return Outcome(Step.PARKED)
    if head["next_attempt_at"] is not None and head["next_attempt_at"] > now:
        return Outcome(Step.WAIT, retry_in=(head["next_attempt_at"] - now).total_seconds())
    return Outcome(Step.BUSY)


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


def _retry_later(record: SyncRecord, account: SolusioAccount, exc: SolusIOError) -> float:
    record.attempts += 1
    # SolusIO said when (a 429's Retry-After): not before that.
    at_least = exc.retry_after if isinstance(exc, RateLimited) else None
    delay = outbox.retry_later(record, str(exc), now=timezone.now(), at_least=at_least)
    account.last_error = f"retrying: {record.last_error}"
    account.save(update_fields=["last_error"])
    return delay


def _park(record: SyncRecord, account: SolusioAccount, exc: Exception) -> None:
    record.attempts += 1
    outbox.park(record, str(exc))
    account.state = SyncState.PARKED
    account.last_error = record.last_error
    account.save(update_fields=["state", "last_error"])


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
        outbox.request_delivery(customers)
    return count
