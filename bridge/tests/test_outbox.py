"""The outbox skeleton: delivery requested once per committed transaction in chunks, never
for a rolled-back one; a failed record waits its backoff or is parked."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from users import tasks
from users.models import SyncRecord, SyncRecordState
from users.sync import outbox

pytestmark = [pytest.mark.django_db, pytest.mark.both_databases]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[int], dict[str, Any]]]:
    """What reaches the broker: (keys, options) per message."""
    messages: list[tuple[list[int], dict[str, Any]]] = []

    def apply_async(args: tuple[list[int]], **options: Any) -> None:
        messages.append((args[0], options))

    monkeypatch.setattr(tasks.deliver_customers, "apply_async", apply_async)
    return messages


def keys(messages: list[tuple[list[int], dict[str, Any]]]) -> list[list[int]]:
    return [chunk for chunk, _ in messages]


def test_one_transaction_sends_its_keys_once_each_in_chunks(
    sent: list[Any], settings: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    settings.SOLUSIO_SYNC_TASK_BATCH = 2
    settings.SOLUSIO_SYNC_QUEUE = "sync"
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        outbox.request_delivery([3, 1])
        outbox.request_delivery([3, 2, 5])
        outbox.request_delivery([4])
        assert sent == []  # not before the commit
    assert keys(sent) == [[3, 1], [2, 5], [4]]
    assert {options["queue"] for _, options in sent} == {"sync"}


def test_a_rolled_back_transaction_sends_nothing_now_or_later(
    sent: list[Any], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    def request_then_fail() -> None:
        with transaction.atomic():
            outbox.request_delivery([1])
            raise RuntimeError

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            request_then_fail()
        with transaction.atomic():
            outbox.request_delivery([2])
    assert keys(sent) == [[2]]


def test_a_broker_outage_is_reported_for_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(tasks.deliver_customers, "apply_async", broker_down)
    assert outbox.enqueue([1, 2]) is False


def make_record(attempts: int) -> SyncRecord:
    return SyncRecord.objects.create(customer_id=7, action="upsert", payload={}, attempts=attempts)


def test_a_failed_record_waits_its_backoff_or_what_the_other_side_asked(settings: Any) -> None:
    settings.SOLUSIO_SYNC_RETRY_BASE = 10.0
    settings.SOLUSIO_SYNC_RETRY_MAX = 60.0
    now = timezone.now()
    record = make_record(attempts=3)  # the third failure: 20 to 40 s
    delay = outbox.retry_later(record, "HTTP 503", now=now)
    record.refresh_from_db()
    assert 20 <= delay <= 40
    assert (record.state, record.next_attempt_at, record.last_error) == (
        SyncRecordState.PENDING,
        now + timedelta(seconds=delay),
        "HTTP 503",
    )
    assert outbox.retry_later(record, "HTTP 429", now=now, at_least=100.0) == 100.0
    record.attempts = 30  # long past the cap
    assert outbox.retry_later(record, "HTTP 503", now=now) <= 60.0


def test_a_parked_record_waits_for_staff(settings: Any) -> None:
    record = make_record(attempts=1)
    record.next_attempt_at = timezone.now()
    outbox.park(record, "HTTP 422: " + "x" * 5000)
    record.refresh_from_db()
    assert (record.state, record.next_attempt_at) == (SyncRecordState.PARKED, None)
    assert len(record.last_error) == 2000
    later = timezone.now() + timedelta(days=1)
    assert not outbox.claim(SyncRecord.objects.all(), later).exists()
    assert outbox.sweep(now=later) == 0
