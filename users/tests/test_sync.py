"""The user lifecycle reaches SolusIO through the outbox: every path, in order, once."""

import time
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.utils import timezone

from solusio.testing import SimulatorInfo
from users import services, sync
from users.models import (
    CustomerStatus,
    LimitGroup,
    SolusioAccount,
    SyncRecord,
    SyncRecordState,
    SyncState,
)
from users.tests.conftest import deliver_all, solusio_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def requested(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The deliveries asked of the broker, one list of customers per message batch."""
    asked: list[list[int]] = []

    def enqueue(ids: list[int], **options: Any) -> bool:
        asked.append(list(ids))
        return True

    monkeypatch.setattr(sync.outbox, "enqueue", enqueue)
    return asked


def user_calls(info: SimulatorInfo, method: str | None = None) -> list[dict[str, Any]]:
    return [
        c
        for c in info.control.calls(method=method)
        if c["path"].startswith("/users") and c["fault"] is None
    ]


@pytest.mark.both_databases
def test_creating_a_customer_creates_its_solusio_user(sim: SimulatorInfo, make_customer) -> None:
    services.mirror_limit_groups()
    services.set_default_limit_group(limit_group=LimitGroup.objects.get(name="Trial"))
    customer = make_customer(email="ann@example.com")
    assert SolusioAccount.objects.get(pk=customer.pk).state == SyncState.PENDING
    assert solusio_user(sim, customer.pk) is None  # nothing before delivery

    deliver_all()

    user = solusio_user(sim, customer.pk)
    assert user is not None
    assert (user["email"], user["status"], user["limit_group_id"]) == (
        "ann@example.com",
        "active",
        3,  # the default group, copied onto the customer at creation
    )
    account = SolusioAccount.objects.get(pk=customer.pk)
    assert (account.state, account.solusio_user_id, account.last_error) == (
        SyncState.SYNCED,
        user["id"],
        "",
    )


def test_role_and_language_come_from_settings(
    sim: SimulatorInfo, make_customer, settings: Any
) -> None:
    settings.SOLUSIO_USER_ROLE_IDS = [2]
    settings.SOLUSIO_USER_LANGUAGE_ID = 2
    customer = make_customer()
    deliver_all()
    user = solusio_user(sim, customer.pk)
    assert user is not None
    assert (user["roles"], user["language_id"]) == ([2], 2)


@pytest.mark.both_databases
def test_edits_lock_suspend_unsuspend_and_delete_arrive_in_order(
    sim: SimulatorInfo, make_customer
) -> None:
    services.mirror_limit_groups()
    customer = make_customer(email="bob@example.com")
    services.update_customer(customer=customer, changes={"email": "bob@example.org"})
    services.update_customer(
        customer=customer, changes={"limit_group": LimitGroup.objects.get(pk=2)}
    )
    services.change_customer_status(customer_id=customer.pk, status="locked", reason="fraud check")
    services.change_customer_status(customer_id=customer.pk, status="suspended", reason="dunning")
    services.change_customer_status(customer_id=customer.pk, status="active", reason="paid")
    assert [r.reason for r in SyncRecord.objects.filter(customer_id=customer.pk)] == [
        "created",
        "edited",
        "edited",
        "fraud check",
        "dunning",
        "paid",
    ]

    deliver_all()

    puts = [c["body"] for c in user_calls(sim, "PUT")]
    assert [(b["email"], b["limit_group_id"], b["status"]) for b in puts] == [
        ("bob@example.org", None, "active"),
        ("bob@example.org", 2, "active"),
        ("bob@example.org", 2, "locked"),
        ("bob@example.org", 2, "suspended"),
        ("bob@example.org", 2, "active"),
    ]
    user = solusio_user(sim, customer.pk)
    assert user is not None
    assert (user["email"], user["status"], user["limit_group_id"]) == (
        "bob@example.org",
        "active",
        2,
    )

    services.delete_customer(customer=customer)
    deliver_all()
    assert solusio_user(sim, customer.pk) is None
    assert not SolusioAccount.objects.filter(pk=customer.pk).exists()
    assert SyncRecord.objects.exclude(state=SyncRecordState.DONE).count() == 0


def test_changes_solusio_does_not_see_queue_nothing(sim: SimulatorInfo, make_customer) -> None:
    customer = make_customer()
    services.update_customer(customer=customer, changes={"name": "New name", "region": "X"})
    services.change_customer_status(customer_id=customer.pk, status="active", reason="no-op")
    assert SyncRecord.objects.filter(customer_id=customer.pk).count() == 1  # the create


def test_change_customer_status_refuses_an_unknown_status(make_customer, sim) -> None:
    customer = make_customer()
    with pytest.raises(ValueError, match="unknown status"):
        services.change_customer_status(customer_id=customer.pk, status="gone", reason="x")
    assert customer.status == CustomerStatus.ACTIVE


def test_a_create_that_already_happened_links_the_existing_user(
    sim: SimulatorInfo, make_customer
) -> None:
    # A user with this e-mail exists, linked to nothing (made by hand, or by a create whose
    # answer was lost): it is linked, and brought to our state.
    state = sim.control.simulator.state  # type: ignore[union-attr]
    existing = state.create_user(
        {"email": "carol@example.com", "password": "secret-pw", "status": "locked"}
    )
    customer = make_customer(email="carol@example.com")
    deliver_all()
    # The create is tried first (new customers are the common case); SolusIO's "e-mail
    # taken" leads to the look-up and the link.
    assert [c["status"] for c in user_calls(sim, "POST")] == [422]
    user = solusio_user(sim, customer.pk)
    assert user is not None
    assert (user["id"], user["status"]) == (existing["id"], "active")
    assert SolusioAccount.objects.get(pk=customer.pk).solusio_user_id == existing["id"]


def test_a_user_relinked_from_another_billing_id_is_reset_to_ours(
    sim: SimulatorInfo, make_customer
) -> None:
    state = sim.control.simulator.state  # type: ignore[union-attr]
    existing = state.create_user(
        {"email": "dan@example.com", "password": "secret-pw", "billing_user_id": 999}
    )
    customer = make_customer(email="dan@example.com")
    deliver_all()
    assert state.users[existing["id"]]["billing_user_id"] == customer.pk


def test_duplicate_and_repeated_deliveries_change_nothing_twice(
    sim: SimulatorInfo, make_customer
) -> None:
    customer = make_customer()
    deliver_all()
    # A duplicate task finds nothing open.
    assert sync.deliver_pending(customer_id=customer.pk).delivered == 0
    # A redelivery of the same record (the worker died after SolusIO answered, before the
    # commit) creates no second user.
    SyncRecord.objects.filter(customer_id=customer.pk).update(state=SyncRecordState.PENDING)
    SolusioAccount.objects.filter(pk=customer.pk).update(solusio_user_id=None)
    deliver_all()
    assert [c["status"] for c in user_calls(sim, "POST")] == [201, 422]
    assert len(sim.control.simulator.state.users) == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("error", {"status": 500}),
        ("error", {"status": 503}),
        ("rate_limit", {"retry_after": 0}),
        ("drop", {}),
        ("drop_after", {}),  # SolusIO created the user; the answer was lost
        ("truncate", {}),
    ],
)
def test_transient_failures_retry_and_arrive_once(
    sim: SimulatorInfo, make_customer, kind: str, options: dict[str, Any]
) -> None:
    customer = make_customer()
    # Enough faults to outlast the delivery's own attempts (a 429 is never retried in it).
    count = 1 if kind == "rate_limit" else django_settings.SOLUSIO_SYNC_CALL_ATTEMPTS
    sim.control.fail_next(kind, count, method="POST", path="/users", **options)
    result = sync.deliver_pending(customer_id=customer.pk)
    if kind in ("drop_after", "truncate"):
        # The client looked the e-mail up after the ambiguous failure and linked the user.
        assert result.delivered == 1
    else:
        assert (result.delivered, result.stopped) == (0, sync.Step.WAIT)
        record = SyncRecord.objects.get(customer_id=customer.pk)
        assert (record.state, record.attempts) == (SyncRecordState.PENDING, 1)
        assert record.last_error
        assert SolusioAccount.objects.get(pk=customer.pk).last_error.startswith("retrying:")
    deliver_all()
    assert solusio_user(sim, customer.pk) is not None
    assert len(sim.control.simulator.state.users) == 1  # type: ignore[union-attr]
    account = SolusioAccount.objects.get(pk=customer.pk)
    assert (account.state, account.last_error) == (SyncState.SYNCED, "")


def test_a_passing_5xx_is_tried_again_in_the_delivery_but_a_429_goes_to_the_outbox(
    sim: SimulatorInfo, make_customer
) -> None:
    first, second = make_customer(), make_customer()
    sim.control.fail_next("error", 1, method="POST", path="/users", status=502)
    assert sync.deliver_pending(customer_id=first.pk).delivered == 1

    def posts() -> list[int]:  # faulted calls included
        return [c["status"] for c in sim.control.calls(method="POST") if c["path"] == "/users"]

    assert posts() == [502, 201]

    sim.control.fail_next("rate_limit", 1, method="POST", path="/users", retry_after=30)
    result = sync.deliver_pending(customer_id=second.pk)
    assert (result.delivered, result.stopped) == (0, sync.Step.WAIT)
    assert posts() == [502, 201, 429]  # not slept through: one call
    record = SyncRecord.objects.get(customer_id=second.pk)
    assert record.next_attempt_at is not None  # the outbox waits out the Retry-After


def test_a_timed_out_update_is_not_sent_again_ahead_of_the_next_change(
    sim: SimulatorInfo, make_customer, settings: Any
) -> None:
    """A write that timed out may still be running in SolusIO: sending it again at once
    and then the customer's next change would let the stale first one land last."""
    settings.SOLUSIO_READ_TIMEOUT = 0.3
    customer = make_customer()
    deliver_all()
    services.change_customer_status(customer_id=customer.pk, status="locked", reason="x")
    services.change_customer_status(customer_id=customer.pk, status="active", reason="paid")
    sim.control.fail_next("slow", 1, method="PUT", delay=1.0)  # runs after its timeout
    sync.deliver_pending(customer_id=customer.pk)
    time.sleep(1.2)  # SolusIO finishes the PUT nobody waited for
    deliver_all()
    assert solusio_user(sim, customer.pk)["status"] == "active"  # type: ignore[index]


@pytest.mark.both_databases
def test_a_failing_update_is_retried_with_a_growing_delay(
    sim: SimulatorInfo, make_customer, settings: Any
) -> None:
    settings.SOLUSIO_SYNC_RETRY_BASE = 10.0
    settings.SOLUSIO_SYNC_RETRY_MAX = 60.0
    settings.SOLUSIO_SYNC_CALL_ATTEMPTS = 1  # every failure goes back to the outbox
    customer = make_customer()
    deliver_all()
    services.change_customer_status(customer_id=customer.pk, status="locked", reason="x")
    sim.control.fail_next("error", 5, method="PUT")
    delays = []
    for _ in range(3):
        SyncRecord.objects.filter(customer_id=customer.pk).update(next_attempt_at=None)
        result = sync.deliver_pending(customer_id=customer.pk)
        assert result.stopped is sync.Step.WAIT
        assert result.retry_in is not None
        delays.append(result.retry_in)
    assert 5 <= delays[0] <= 10 < delays[1] <= 20 < delays[2] <= 40
    # Not due yet: a duplicate task waits instead of calling SolusIO.
    calls_before = len(sim.control.calls())
    assert sync.deliver_pending(customer_id=customer.pk).stopped is sync.Step.WAIT
    assert len(sim.control.calls()) == calls_before


@pytest.mark.both_databases
def test_a_permanent_failure_parks_the_record_and_holds_back_later_ones(
    sim: SimulatorInfo, make_customer
) -> None:
    customer = make_customer()
    sim.control.fail_next("error", 1, method="POST", path="/users", status=422)
    services.change_customer_status(customer_id=customer.pk, status="suspended", reason="dunning")

    result = sync.deliver_pending(customer_id=customer.pk)

    assert result.stopped is sync.Step.PARKED
    first, second = SyncRecord.objects.filter(customer_id=customer.pk)
    assert first.state == SyncRecordState.PARKED
    assert "HTTP 422" in first.last_error
    assert second.state == SyncRecordState.PENDING  # held back: order matters
    account = SolusioAccount.objects.get(pk=customer.pk)
    assert account.state == SyncState.PARKED
    assert "HTTP 422" in account.last_error
    deliver_all()
    assert solusio_user(sim, customer.pk) is None

    assert sync.retry_parked(customer_ids=[customer.pk]) == 1
    deliver_all()
    user = solusio_user(sim, customer.pk)
    assert user is not None
    assert user["status"] == "suspended"
    assert SolusioAccount.objects.get(pk=customer.pk).state == SyncState.SYNCED


def test_a_user_deleted_in_solusio_is_created_again_on_the_next_change(
    sim: SimulatorInfo, make_customer
) -> None:
    customer = make_customer()
    deliver_all()
    old = solusio_user(sim, customer.pk)
    assert old is not None
    sim.control.simulator.state.delete_user(old["id"])  # type: ignore[union-attr]
    services.change_customer_status(customer_id=customer.pk, status="locked", reason="x")
    deliver_all()
    new = solusio_user(sim, customer.pk)
    assert new is not None
    assert new["status"] == "locked"
    assert SolusioAccount.objects.get(pk=customer.pk).solusio_user_id == new["id"]


def test_deleting_never_touches_a_user_linked_to_someone_else(
    sim: SimulatorInfo, make_customer
) -> None:
    customer = make_customer(email="eve@example.com")
    sim.control.fail_next("error", 1, method="POST", path="/users", status=422)
    deliver_all()  # parked: never linked
    state = sim.control.simulator.state  # type: ignore[union-attr]
    other = state.create_user(
        {"email": "eve@example.com", "password": "secret-pw", "billing_user_id": 4242}
    )
    services.delete_customer(customer=customer)
    SyncRecord.objects.filter(customer_id=customer.pk, action="upsert").update(state="done")
    deliver_all()
    assert other["id"] in state.users
    assert not user_calls(sim, "DELETE")


@pytest.mark.both_databases
def test_sweep_requests_delivery_of_stale_and_due_records(
    sim: SimulatorInfo, make_customer, settings: Any, requested: list[list[int]]
) -> None:
    settings.SOLUSIO_SYNC_SWEEP_AFTER = 3600.0
    fresh = make_customer()
    assert sync.sweep() == 0  # just written: its on_commit message is on its way
    settings.SOLUSIO_SYNC_SWEEP_AFTER = 0.0
    assert sync.sweep() == 1
    assert requested == [[fresh.pk]]


def test_the_outbox_write_rolls_back_with_the_change(sim: SimulatorInfo, usd) -> None:
    def create_then_fail() -> None:
        with transaction.atomic():
            services.create_customer(email="zed@example.com", currency=usd)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        create_then_fail()
    assert not SyncRecord.objects.exists()


@pytest.mark.both_databases
def test_delivery_is_requested_only_after_commit(
    sim: SimulatorInfo, usd, django_capture_on_commit_callbacks, requested: list[list[int]]
) -> None:
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        first = services.create_customer(email="ida@example.com", currency=usd)
        services.change_customer_status(customer_id=first.pk, status="locked", reason="x")
        second = services.create_customer(email="joe@example.com", currency=usd)
        assert requested == []
    # One request per transaction, each customer once, in the order they were changed.
    assert requested == [[first.pk, second.pk]]


@pytest.mark.both_databases
def test_a_retry_and_the_next_change_are_delivered_in_order(
    sim: SimulatorInfo, make_customer, settings: Any
) -> None:
    settings.SOLUSIO_SYNC_CALL_ATTEMPTS = 1  # every failure goes back to the outbox
    customer = make_customer()
    services.change_customer_status(customer_id=customer.pk, status="locked", reason="x")
    sim.control.fail_next("error", 1, method="PUT")
    assert sync.deliver_pending(customer_id=customer.pk).stopped is sync.Step.WAIT
    deliver_all()
    user = solusio_user(sim, customer.pk)
    assert user is not None
    assert user["status"] == "locked"
    account = SolusioAccount.objects.get(pk=customer.pk)
    assert (account.state, account.solusio_user_id) == (SyncState.SYNCED, user["id"])
    assert SyncRecord.objects.filter(state=SyncRecordState.DONE).count() == 2


def test_without_solusio_configured_changes_wait(make_customer, settings: Any) -> None:
    settings.SOLUSIO_API_URL = ""
    customer = make_customer()
    assert sync.deliver_pending(customer_id=customer.pk).stopped is sync.Step.WAIT
    assert SyncRecord.objects.get(customer_id=customer.pk).state == SyncRecordState.PENDING


def test_a_create_that_times_out_while_succeeding_makes_one_user(
    sim: SimulatorInfo, make_customer, settings: Any
) -> None:
    settings.SOLUSIO_READ_TIMEOUT = 0.3
    settings.SOLUSIO_SYNC_CALL_ATTEMPTS = 1  # the timeout goes back to the outbox
    customer = make_customer()
    sim.control.fail_next("slow", 1, method="POST", path="/users", delay=1.0)
    assert sync.deliver_pending(customer_id=customer.pk).stopped is sync.Step.WAIT
    time.sleep(1.0)  # SolusIO finishes the create nobody waited for
    deliver_all()
    assert len(sim.control.simulator.state.users) == 1  # type: ignore[union-attr]
    assert SolusioAccount.objects.get(pk=customer.pk).state == SyncState.SYNCED


def test_customers_imported_from_another_billing_system_reach_solusio(
    sim: SimulatorInfo, usd
) -> None:
    from pricing.imports import import_billing_data

    import_billing_data(
        data={
            "customers": [
                {"id": 501, "email": "imp1@example.com", "currency": "USD"},
                {"id": 502, "email": "imp2@example.com", "currency": "USD", "status": "locked"},
            ]
        }
    )
    deliver_all()
    assert solusio_user(sim, 501)["email"] == "imp1@example.com"  # type: ignore[index]
    assert solusio_user(sim, 502)["status"] == "locked"  # type: ignore[index]
    # Re-importing the same file changes nothing, so SolusIO hears nothing new.
    import_billing_data(
        data={"customers": [{"id": 501, "email": "imp1@example.com", "currency": "USD"}]}
    )
    assert SyncRecord.objects.filter(customer_id=501).count() == 1


def test_a_429_is_retried_after_its_retry_after_without_holding_the_worker(
    sim: SimulatorInfo, make_customer, settings: Any
) -> None:
    settings.SOLUSIO_RETRY_MAX_ATTEMPTS = 4  # the sync still makes one attempt per call
    customer = make_customer()
    sim.control.fail_next("rate_limit", 1, method="POST", path="/users", retry_after=30)
    started = time.monotonic()
    result = sync.deliver_pending(customer_id=customer.pk)
    assert time.monotonic() - started < 5  # nobody slept through the Retry-After
    assert result.stopped is sync.Step.WAIT
    assert result.retry_in is not None
    assert 29 <= result.retry_in <= 30
    assert len(sim.control.calls(method="POST")) == 1


@pytest.mark.both_databases
def test_the_sweep_stands_back_while_the_queue_has_a_backlog(
    sim: SimulatorInfo,
    make_customer,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    requested: list[list[int]],
) -> None:
    settings.SOLUSIO_SYNC_SWEEP_AFTER = 0.0
    settings.SOLUSIO_SYNC_SWEEP_MAX_BACKLOG = 10
    make_customer()
    monkeypatch.setattr(sync.outbox, "backlog", lambda: 11)
    assert sync.sweep() == 0
    monkeypatch.setattr(sync.outbox, "backlog", lambda: 10)
    assert sync.sweep() == 1
    monkeypatch.setattr(sync.outbox, "backlog", lambda: None)  # the broker cannot tell
    assert sync.sweep() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL path is PostgreSQL's")
def test_the_postgresql_claim_finds_the_head_record_through_the_open_records_index(
    make_customer, sim: SimulatorInfo
) -> None:
    customer = make_customer()
    params = {"customer": customer.pk, "now": timezone.now(), **sync._STATES}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # usable, not just chosen
        cursor.execute("EXPLAIN " + sync._sql(sync._CLAIM), params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "syncrecord_open_idx" in plan, plan
    assert sync._claim(customer.pk, timezone.now())[0] == (  # type: ignore[index]
        SyncRecord.objects.get(customer_id=customer.pk).pk
    )
