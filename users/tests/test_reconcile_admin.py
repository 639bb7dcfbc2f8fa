"""Staff start a reconciliation from the admin ("Reconcile now") and read its stored
report there: when, the counts per kind of drift, and the findings."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from pricing.tests.api_helpers import make_user
from solusio.testing import SimulatorInfo
from users import reconcile, tasks
from users.models import ReconcileRun, ReconcileRunState
from users.tests.conftest import deliver_all

pytestmark = pytest.mark.django_db

RUN = reverse("admin:users_reconcilerun_run")
RUNS = reverse("admin:users_reconcilerun_changelist")
RECORDS = reverse("admin:users_syncrecord_changelist")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The task messages "Reconcile now" sends (no broker needed)."""
    messages: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.reconcile, "apply_async", lambda **kw: messages.append(kw["kwargs"]))
    return messages


def with_drift(sim: SimulatorInfo, make_customer: Any) -> None:
    make_customer()
    deliver_all()
    state = sim.control.simulator.state  # type: ignore[union-attr]
    state.create_user({"email": "walkin@example.com", "password": "pw-123456"})


def test_reconcile_now_queues_a_run_that_the_worker_fills_with_its_report(
    sim: SimulatorInfo,
    make_customer: Any,
    admin_client: Client,
    sent: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with_drift(sim, make_customer)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(RUN, {"next": "admin:users_syncrecord_changelist"})
    assert response.status_code == 302
    assert response["Location"] == RECORDS
    run = ReconcileRun.objects.get()
    assert (run.state, run.fix, run.trigger) == (ReconcileRunState.QUEUED, True, "admin: admin")
    assert sent == [{"fix": True, "run_id": run.pk}]

    # Asking again while it waits queues nothing more.
    again = admin_client.post(RUN, follow=True)
    assert "already queued" in again.content.decode()
    assert ReconcileRun.objects.count() == 1

    # The worker runs the task with that run's id.
    tasks.reconcile(**sent[0])
    run.refresh_from_db()
    assert run.state == ReconcileRunState.DONE
    assert run.started_at is not None
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at >= run.requested_at
    assert run.counts["unknown_users"] == 1
    assert run.counts["missing"] == 0
    assert run.counts["drift"] == 0
    assert any("walkin@example.com" in line for line in run.details)
    # A duplicate delivery of the same message does not run it twice.
    assert tasks.reconcile(**sent[0]) == {}

    for page in (RECORDS, RUNS, reverse("admin:users_reconcilerun_change", args=[run.pk])):
        body = admin_client.get(page).content.decode()
        assert "walkin@example.com" in body, page
        assert "Reconcile now" in body or page.endswith("/change/"), page
    summary = admin_client.get(RECORDS).content.decode()
    assert "users with no customer: 1" in summary
    assert "admin: admin" in summary


def test_beat_and_the_command_store_their_reports_too(
    sim: SimulatorInfo, make_customer: Any
) -> None:
    with_drift(sim, make_customer)
    counts = tasks.reconcile(fix=True)
    assert counts["unknown_users"] == 1
    beat = ReconcileRun.objects.get()
    assert (beat.trigger, beat.state, beat.counts) == ("beat", ReconcileRunState.DONE, counts)
    from io import StringIO

    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError):
        call_command("solusio_reconcile", stdout=StringIO())
    command = ReconcileRun.objects.order_by("-id").first()
    assert command is not None
    assert (command.trigger, command.fix, command.state) == (
        "command",
        False,
        ReconcileRunState.DONE,
    )


def test_a_failed_reconciliation_is_stored_with_its_reason(
    sim: SimulatorInfo, admin_client: Client, settings: Any
) -> None:
    sim.control.fail_next("error", 5, method="GET", path="/users", status=500)
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever SolusIO's error is
        reconcile.run_recorded(fix=True, trigger="beat")
    run = ReconcileRun.objects.get()
    assert run.state == ReconcileRunState.FAILED
    assert "500" in run.error
    assert run.counts == {}
    assert "Failed" in admin_client.get(RECORDS).content.decode()


def test_a_broker_that_refuses_the_message_fails_the_run_at_once(
    admin_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def refuse(**_: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.reconcile, "apply_async", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(RUN)
    assert ReconcileRun.objects.get().state == ReconcileRunState.FAILED
    page = admin_client.get(RUNS).content.decode()
    assert "Could not reach the workers: broker down" in page
    # A failed run does not stand in the way of the next try.
    monkeypatch.setattr(tasks.reconcile, "apply_async", lambda **kw: None)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(RUN)
    assert ReconcileRun.objects.count() == 2


def test_a_run_left_running_by_a_dead_worker_does_not_block_a_new_one(
    admin_client: Client, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    from django.utils import timezone

    stuck = ReconcileRun.objects.create(trigger="beat", state=ReconcileRunState.RUNNING)
    ReconcileRun.objects.filter(pk=stuck.pk).update(
        requested_at=timezone.now() - reconcile.RUN_STALE_AFTER * 2
    )
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(RUN)
    assert ReconcileRun.objects.count() == 2
    assert len(sent) == 1


def staff(username: str, *actions: str) -> User:
    return make_user(username, models=[ReconcileRun], actions=actions)


def test_reconcile_now_needs_the_add_permission(sent: list[dict[str, Any]]) -> None:
    viewer = Client()
    viewer.force_login(staff("viewer", "view"))
    assert "Reconcile now" not in viewer.get(RUNS).content.decode()
    assert viewer.post(RUN).status_code == 403
    assert viewer.get(RUN).status_code == 405
    assert not ReconcileRun.objects.exists()

    starter = Client()
    starter.force_login(staff("starter", "view", "add"))
    assert "Reconcile now" in starter.get(RUNS).content.decode()
    assert starter.post(RUN).status_code == 302
    assert ReconcileRun.objects.get().trigger == "admin: starter"


def test_the_pages_say_so_when_nothing_has_run_yet(admin_client: Client) -> None:
    assert "No reconciliation has run yet." in admin_client.get(RECORDS).content.decode()


def test_the_report_shows_only_to_staff_who_may_read_reports() -> None:
    from django.utils import timezone

    from users.models import SyncRecord

    ReconcileRun.objects.create(
        trigger="beat",
        state=ReconcileRunState.DONE,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        counts={"unknown_users": 1},
        details=[{"kind": "unknown_user", "email": "walkin@example.com"}],
    )
    outsider = Client()
    outsider.force_login(make_user("outsider", models=[SyncRecord], actions=["view"]))
    page = outsider.get(RECORDS).content.decode()
    assert "reconcile-panel" not in page

    reader = Client()
    reader.force_login(make_user("reader", models=[SyncRecord, ReconcileRun], actions=["view"]))
    assert "reconcile-panel" in reader.get(RECORDS).content.decode()


@pytest.mark.django_db(transaction=True)
def test_two_requests_at_the_same_instant_queue_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib
    import threading

    from django.db import connection

    monkeypatch.setattr(tasks.reconcile, "apply_async", lambda **kw: None)
    # Both requests look for an open run before either has created one: without the lock
    # both would create theirs.
    barrier = threading.Barrier(2, timeout=10)
    real_filter = ReconcileRun.objects.filter

    def filter_after_both_arrive(*args: Any, **kwargs: Any) -> Any:
        # The other request holding the lock waits there, as it should: the barrier breaks.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=1)
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(ReconcileRun.objects, "filter", filter_after_both_arrive)
    results: list[bool] = []

    def request() -> None:
        try:
            results.append(reconcile.request_run(fix=True, trigger="click")[1])
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True]
    assert ReconcileRun.objects.count() == 1
