"""The transactional outbox every delivery shares (the user sync, invoice e-mails): a record
written in the change's transaction, delivery requested when it commits, a claim under
`FOR UPDATE SKIP LOCKED`, a backoff for transient failures, parking for staff, and a sweep
for what the broker lost that stands back while the workers are behind."""

from __future__ import annotations

import enum
import logging
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import Min, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from bridge.backoff import Backoff

log = logging.getLogger(__name__)

Record = TypeVar("Record", bound=models.Model)

# Fail fast when the broker is down: the caller may be a web request, and the sweep is the
# retry.
_PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}


class Step(enum.Enum):
    DELIVERED = "delivered"  # one record delivered
    IDLE = "idle"  # nothing open and due that nobody else holds
    BUSY = "busy"  # another worker is delivering it
    WAIT = "wait"  # failed transiently or not due yet; `retry_in` says when
    PARKED = "parked"  # needs staff
    SKIPPED = "skipped"  # no longer wanted (the invoice was voided)


@dataclass(frozen=True)
class Outcome:
    step: Step
    retry_in: float | None = None  # seconds until the record may be tried again
    more: bool = False  # delivered, and the key has more open records


class Outbox(Generic[Record]):
    """One outbox table. Settings are read per call (tests and staff change them):
    `<prefix>_TASK_BATCH`, `_SWEEP_AFTER`, `_SWEEP_MAX_BACKLOG`, `_RETRY_BASE`,
    `_RETRY_MAX` and, if set, `_QUEUE`.

    The record model has `state`, `attempts`, `next_attempt_at`, `last_error` and
    `created_at`; `key` names the field deliveries are asked for by (one task call per key,
    records of one key in id order); `task` is the import path of a Celery task that takes
    a list of keys."""

    def __init__(
        self,
        *,
        label: str,
        model: type[Record],
        key: str,
        task: str,
        settings_prefix: str,
        pending: str,
        parked: str,
        jitter: float = 0.5,
    ) -> None:
        self.label = label
        self.model = model
        self.key = key
        self.task = task
        self.prefix = settings_prefix
        self.pending = pending
        self.parked = parked
        self.jitter = jitter
        self._local = threading.local()
        self._error_limit = getattr(model._meta.get_field("last_error"), "max_length", None) or 2000

    def setting(self, name: str) -> Any:
        return getattr(settings, f"{self.prefix}_{name}")

    @property
    def queue(self) -> str | None:
        return getattr(settings, f"{self.prefix}_QUEUE", None)

    # --- Requesting delivery -----------------------------------------------------------

    def request_delivery(self, keys: Iterable[Any]) -> None:
        """Ask for delivery of these keys when the current transaction commits (at once in
        autocommit). All requests of one transaction go out together, each key once, in
        the order first asked, in tasks of `<prefix>_TASK_BATCH`: an import of 10,000
        customers is 400 messages, not 10,000."""
        if not transaction.get_connection().in_atomic_block:
            self.enqueue(list(dict.fromkeys(keys)))
            return
        # The batch is held only by its on-commit callback; this thread keeps a weak
        # reference. A rollback (of the transaction, or of the savepoint that registered
        # it) drops the callback and so the batch with its keys, and the next request
        # starts a new one: no reading of Django's callback list needed.
        ref: weakref.ref[_Batch] | None = getattr(self._local, "batch", None)
        batch = ref() if ref is not None else None
        if batch is None or batch.sent:
            batch = _Batch(self)
            self._local.batch = weakref.ref(batch)
            transaction.on_commit(batch.flush, robust=True)
        batch.keys.update(dict.fromkeys(keys))

    def enqueue(self, keys: Sequence[Any], *, countdown: float | None = None) -> bool:
        """Ask workers to deliver these keys' records. False when the broker is down: the
        records are safe in the database and the sweep asks again."""
        task = import_string(self.task)
        size = max(1, self.setting("TASK_BATCH"))
        for start in range(0, len(keys), size):
            chunk = list(keys[start : start + size])
            try:
                task.apply_async(
                    (chunk,),
                    countdown=countdown,
                    queue=self.queue,
                    retry=True,
                    retry_policy=_PUBLISH_RETRY,
                )
            except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep covers it
                log.warning(
                    "%s: could not enqueue %d (%s); the sweep will",
                    self.label,
                    len(keys) - start,
                    exc,
                )
                return False
        return True

    # --- Delivery ----------------------------------------------------------------------

    @staticmethod
    def due(now: datetime) -> Q:
        return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)

    def claim(self, records: models.QuerySet[Record], now: datetime) -> models.QuerySet[Record]:
        """`records` narrowed to pending, due ones nobody else holds, locked for this
        transaction (ignored where the database serialises writers, SQLite). The lock is
        held through the delivery: a worker killed mid-way rolls back and the record stays
        pending for the next one."""
        return (
            records.filter(state=self.pending)
            .filter(self.due(now))
            .select_for_update(skip_locked=True, of=("self",))
        )

    def backoff(self) -> Backoff:
        return Backoff(self.setting("RETRY_BASE"), self.setting("RETRY_MAX"), self.jitter)

    def retry_later(
        self,
        record: Record,
        error: str,
        *,
        now: datetime,
        at_least: float | None = None,
        fields: Iterable[str] = (),
    ) -> float:
        """Keep the record pending for the backoff after `record.attempts` failures (this
        one counted), or `at_least` seconds when the other side said when (Retry-After).
        Saves it with `fields`; returns the delay."""
        row: Any = record  # the fields named in the class docstring
        delay = self.backoff().delay(row.attempts)
        if at_least is not None:
            delay = max(delay, at_least)
        row.next_attempt_at = now + timedelta(seconds=delay)
        row.last_error = error[: self._error_limit]
        row.save(update_fields=["attempts", "next_attempt_at", "last_error", *fields])
        log.warning(
            "%s: %s %s attempt %d failed (%s); retry in %.1f s",
            self.label,
            self.key,
            getattr(row, self.key),
            row.attempts,
            error,
            delay,
        )
        return delay

    def park(self, record: Record, error: str, *, fields: Iterable[str] = ()) -> None:
        """Stop trying: the record waits for staff."""
        row: Any = record
        row.state = self.parked
        row.next_attempt_at = None
        row.last_error = error[: self._error_limit]
        row.save(update_fields=["attempts", "state", "next_attempt_at", "last_error", *fields])
        log.error(
            "%s: %s %s parked after %d attempts: %s",
            self.label,
            self.key,
            getattr(row, self.key),
            row.attempts,
            error,
        )

    # --- The sweep (beat) ----------------------------------------------------------------

    def backlog(self) -> int | None:
        """Messages waiting in the outbox's queue; None when the broker cannot tell."""
        from bridge.queues import backlog

        return backlog(self.queue)

    def sweep(self, *, now: datetime | None = None, limit: int = 10_000) -> int:
        """Request delivery of keys whose pending records are due for a retry, or older
        than `<prefix>_SWEEP_AFTER` (their message was lost). Returns how many keys.

        Skipped while the queue holds more than `<prefix>_SWEEP_MAX_BACKLOG` messages:
        those records are waiting, not lost, and asking again would only give the workers
        the same deliveries to find done when they are behind."""
        waiting = self.backlog()
        if waiting is not None and waiting > self.setting("SWEEP_MAX_BACKLOG"):
            log.info("%s: %d messages queued; the sweep waits for the workers", self.label, waiting)
            return 0
        now = now or timezone.now()
        stale = now - timedelta(seconds=self.setting("SWEEP_AFTER"))
        due = (
            self.model._default_manager.filter(state=self.pending)
            .filter(
                Q(next_attempt_at__isnull=True, created_at__lte=stale) | Q(next_attempt_at__lte=now)
            )
            .values(self.key)
            .annotate(first=Min("pk"))
            .order_by("first")[:limit]
        )
        keys = [row[self.key] for row in due]
        if not keys or not self.enqueue(keys):
            return 0  # nothing to do, or the broker is down: the next sweep tries again
        return len(keys)


class _Batch:
    """The keys one transaction asked for."""

    def __init__(self, outbox: Outbox[Any]) -> None:
        self.outbox = outbox
        self.keys: dict[Any, None] = {}  # an ordered set
        self.sent = False

    def flush(self) -> None:
        if self.sent:
            return
        self.sent = True
        self.outbox.enqueue(list(self.keys))
