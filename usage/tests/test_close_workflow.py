"""The close as a workflow of recorded stages (usage/workflow.py): shards retried, lost and
swept, the issuing step once, and real Celery workers over Redis closing a month together."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from solusio.testing import SimulatorInfo
from usage import close, workflow
from usage.models import (
    CloseRun,
    CloseRunState,
    CloseShard,
    CloseShardStage,
    CloseShardState,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    UsagePull,
    UsageRecord,
)
from usage.rules import Period, period_of_month
from usage.tests.conftest import BuildBatchHook, CloseQueue
from users.models import Customer

ROOT = Path(__file__).resolve().parents[2]
OCT = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
AFTER = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
def october(
    customers: list[Customer], add_server: Callable[..., Any], settings: Any, sim: SimulatorInfo
) -> Period:
    """Three customers (and an orphan), one customer per shard and per batch."""
    for user in (1, 2, 3, 4):
        add_server(user, 1, OCT - 24 * H)
        add_server(user, 5, OCT + user * 24 * H, OCT + user * 24 * H + 50 * H)
    settings.CLOSE_SHARD_SIZE = 1
    settings.CLOSE_BUILD_BATCH = 1
    settings.SOLUSIO_API_URL = sim.url
    settings.SOLUSIO_API_TOKEN = sim.token
    settings.SOLUSIO_VERIFY_TLS = False
    return period_of_month(2026, 10, "UTC")


def state() -> list[tuple[Any, ...]]:
    invoices = Invoice.objects.order_by("customer_id").values_list(
        "customer_id", "status", "number", "tokens", "total", "fingerprint"
    )
    lines = InvoiceLine.objects.order_by("invoice__customer_id", "position").values_list(
        "invoice__customer_id", "position", "server_id", "tokens", "amount"
    )
    return [*invoices, *lines]


def empty_period() -> None:
    Invoice.objects.all().delete()
    UsageRecord.objects.all().delete()
    UsagePull.objects.all().delete()
    InvoiceCounter.objects.update(last=0)


def clean_run_state(period: Period) -> list[tuple[Any, ...]]:
    """What one uninterrupted inline close leaves, from an empty period."""
    empty_period()
    with time_machine.travel(AFTER):
        close.close_cycle(period=period, auto_issue=True)
    return state()


def numbers() -> list[int]:
    return sorted(n or 0 for n in Invoice.objects.values_list("number", flat=True))


def submit(queue: CloseQueue, period: Period) -> CloseRun:
    with time_machine.travel(AFTER), queue.commits():
        return workflow.submit(period=period, auto_issue=True)


def deliver_the_pull(queue: CloseQueue, run: CloseRun) -> None:
    """Deliver the pull's messages (its start, its shards, its end) until the run builds."""
    while CloseRun.objects.get(pk=run.pk).state == CloseRunState.PULLING:
        queue.deliver_one()


def close_submitted(queue: CloseQueue, period: Period) -> CloseRun:
    """Submit a close and deliver its messages until none is left."""
    run = submit(queue, period)
    with time_machine.travel(AFTER):
        queue.deliver_all()
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_an_inline_close_records_its_run_and_shards(october: Period) -> None:
    with time_machine.travel(AFTER):
        summary = close.close_cycle(period=october, auto_issue=True)
    run = CloseRun.objects.get()
    assert (run.state, run.inline, run.source) == (CloseRunState.DONE, True, "usage_api")
    assert (run.rows, run.orphans, run.customers, run.shards_total) == (8, 2, 3, 3)
    assert (run.created, run.issued, summary.created, summary.issued) == (3, 3, 3, 3)
    assert set(run.seconds) == {"pull", "build", "issue"}
    builds = run.shards.filter(stage=CloseShardStage.BUILD)
    shards = list(builds.values_list("first_customer", "last_customer", "state", "built"))
    assert shards == [(c, c, CloseShardState.DONE, 1) for c in (1, 2, 3)]
    pulls = run.shards.filter(stage=CloseShardStage.PULL)  # one page: one part, to the end
    assert list(pulls.values_list("first_part", "last_part", "state", "rows", "orphans")) == [
        (1, None, CloseShardState.DONE, 8, 2)
    ]
    assert all(
        host.startswith(f"{os.uname().nodename}:")
        for host in run.shards.values_list("worker", flat=True)
    )


@pytest.mark.django_db
def test_a_second_close_while_one_is_running_is_refused(
    october: Period, close_queue: CloseQueue
) -> None:
    run = submit(close_queue, october)
    with pytest.raises(workflow.CloseError, match=f"run #{run.pk} is still running"):
        submit(close_queue, october)
    with pytest.raises(workflow.CloseError, match="still running"), time_machine.travel(AFTER):
        close.close_cycle(period=october)


@pytest.mark.django_db
def test_a_failed_shard_is_retried_and_writes_nothing_twice(
    october: Period, close_queue: CloseQueue, after_build_batch: BuildBatchHook
) -> None:
    failures: list[int] = []

    def fail_once_after_a_committed_batch(done: int) -> None:
        # The second shard's first attempt dies after its batch committed: its retry
        # finds the draft it wrote.
        if done == 2 and not failures:
            failures.append(done)
            raise RuntimeError("database went away")

    after_build_batch(fail_once_after_a_committed_batch)
    run = close_submitted(close_queue, october)
    assert run.state == CloseRunState.DONE
    shard = run.shards.get(index=1)
    assert (shard.attempts, shard.state, shard.error) == (2, CloseShardState.DONE, "")
    assert (shard.unchanged, shard.created) == (1, 0)  # its retry found its own draft
    assert (run.created, run.unchanged, run.issued) == (2, 1, 3)
    after = state()
    after_build_batch(None)
    assert clean_run_state(october) == after


@pytest.mark.django_db
def test_a_shard_failing_every_attempt_fails_the_run_with_its_error(
    october: Period, close_queue: CloseQueue, after_build_batch: BuildBatchHook, settings: Any
) -> None:
    settings.CLOSE_SHARD_MAX_ATTEMPTS = 2

    def fail_customer_3(done: int) -> None:
        if Invoice.objects.filter(customer_id=3).exists():
            raise RuntimeError("customer 3 cannot be written")

    after_build_batch(fail_customer_3)
    run = close_submitted(close_queue, october)
    assert run.state == CloseRunState.FAILED
    assert run.error.startswith(
        "build shard 2 (customers 3–3) failed after 2 attempts: RuntimeError"
    )
    shard = run.shards.get(stage=CloseShardStage.BUILD, index=2)
    assert shard.state == CloseShardState.FAILED
    assert "customer 3 cannot be written" in shard.error
    assert not Invoice.objects.exclude(number=None).exists()  # nothing issued
    # A failed run is over: the period can be closed again.
    after_build_batch(None)
    rerun = close_submitted(close_queue, october)
    assert (rerun.state, rerun.issued) == (CloseRunState.DONE, 3)


@pytest.mark.django_db
def test_a_lost_shard_is_rerun_by_the_sweep_once_its_lease_ran_out(
    october: Period, close_queue: CloseQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge import queues

    monkeypatch.setattr(queues, "backlog", lambda queue=None: 0)  # nothing else queued
    run = submit(close_queue, october)
    with time_machine.travel(AFTER):
        deliver_the_pull(close_queue, run)  # three build shards asked for
        assert [t.name for t, _ in close_queue.messages] == ["usage.tasks.close_shard"] * 3
        # A worker takes the first shard and dies: its message is gone, its claim stays.
        _, (lost,) = close_queue.messages.pop(0)
        dead_attempt = workflow._claim_shard(lost)
        assert dead_attempt == 1
        close_queue.deliver_all()
        run.refresh_from_db()
        assert run.state == CloseRunState.BUILDING
        with close_queue.commits():
            assert workflow.sweep() == 0  # its lease still runs
    with time_machine.travel(AFTER + timedelta(seconds=settings.CLOSE_LEASE_SECONDS + 1)):
        with close_queue.commits():
            assert workflow.sweep() == 1
        close_queue.deliver_all()
        # The dead worker's attempt, were it to wake up, records nothing.
        with pytest.raises(workflow.StageLost):
            workflow._build_shard_done(CloseShard.objects.get(pk=lost), dead_attempt, *_nothing())
    run.refresh_from_db()
    assert (run.state, run.issued) == (CloseRunState.DONE, 3)
    assert CloseShard.objects.get(pk=lost).attempts == 2
    assert numbers() == [1, 2, 3]


def _nothing() -> tuple[Any, int]:
    return workflow.CloseSummary(period="2026-10", dry_run=False), 0


@pytest.mark.django_db
def test_the_issuing_step_runs_once(october: Period, close_queue: CloseQueue) -> None:
    from usage import tasks

    run = submit(close_queue, october)
    with time_machine.travel(AFTER):
        close_queue.deliver_all()
        # Asked for again (a duplicate message, a sweep racing the last shard): no effect.
        for _ in range(2):
            assert tasks.close_issue.apply((run.pk,)).get() == f"run #{run.pk}: not ours"
    run.refresh_from_db()
    # The pull's start and end, and the issuing step.
    assert (run.state, run.issued, run.stage_attempts) == (CloseRunState.DONE, 3, 3)
    assert numbers() == [1, 2, 3]
    assert InvoiceCounter.objects.get(name="invoice").last == 3


@pytest.mark.django_db
def test_the_command_shows_progress_bars_on_a_terminal(
    october: Period, capsys: pytest.CaptureFixture[str]
) -> None:
    out = StringIO()

    class Terminal(StringIO):
        def isatty(self) -> bool:
            return True

    with time_machine.travel(AFTER):
        call_command("close_cycle", "--period", "2026-10", stdout=out, stderr=Terminal())
    err = capsys.readouterr().err
    assert "customers built: 100%" in err
    assert "usage rows pulled: 8" in err
    assert "3/3" in err
    assert "usage rows pulled" in err


# --- Real workers ----------------------------------------------------------------------


@pytest.fixture
def workers(sim: SimulatorInfo, tmp_path: Path, settings: Any) -> Iterator[Callable[[int], Any]]:
    """Starts real Celery worker processes (prefork, one child each) on a queue of this
    test's own, over the real Redis broker, against the test database."""
    queue = f"test-close-{uuid.uuid4().hex}"
    settings.CLOSE_QUEUE = queue
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridge.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SOLUSIO_API_URL": sim.url,
        "SOLUSIO_API_TOKEN": sim.token,
        "SOLUSIO_VERIFY_TLS": "0",
        "CLOSE_QUEUE": queue,
        "CLOSE_SHARD_SIZE": "1",
        "CLOSE_BUILD_BATCH": "1",
    }
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(n: int) -> list[subprocess.Popen[bytes]]:
        for i in range(n):
            log = tmp_path / f"worker{len(started)}.log"
            command = [
                sys.executable, "-m", "celery", "-A", "bridge", "worker", "--pool", "prefork",
                "--concurrency", "1", "-Q", queue, "-n", f"close{len(started)}-{i}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
            ]  # fmt: skip
            with open(log, "wb") as out:
                proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
            started.append((proc, log))
        return [p for p, _ in started]

    yield start
    for proc, _ in started:
        proc.send_signal(signal.SIGTERM)
    for proc, log in started:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sys.stderr.write(log.read_text(errors="replace")[-2000:])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_real_workers_close_the_month_and_a_rerun_matches_one_clean_run(
    october: Period, workers: Callable[[int], Any]
) -> None:
    workers(2)
    out = StringIO()
    started = time.monotonic()
    with time_machine.travel(AFTER):
        call_command("close_cycle", "--period", "2026-10", "--issue", "yes", "--submit", stdout=out)
    assert time.monotonic() - started < 120
    run = CloseRun.objects.get()
    assert (run.state, run.inline, run.issued, run.shards_total) == (
        CloseRunState.DONE,
        False,
        3,
        3,
    )
    assert "issued now: 3" in out.getvalue()
    hosts = set(run.shards.values_list("worker", flat=True))
    assert all(h and ":" in h for h in hosts)
    assert run.stage_host  # the issuing step's worker
    assert numbers() == [1, 2, 3]
    assert clean_run_state(october) == state()


@pytest.mark.django_db
def test_an_issuing_step_that_fails_is_rolled_back_and_retried(
    october: Period, close_queue: CloseQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = workflow.issue_invoices
    calls: list[int] = []

    def fail_after_numbering(*, invoice_ids: Any) -> int:
        issued = real(invoice_ids=invoice_ids)
        calls.append(issued)
        if len(calls) == 1:
            raise RuntimeError("connection lost after numbering")
        return issued

    monkeypatch.setattr(workflow, "issue_invoices", fail_after_numbering)
    run = close_submitted(close_queue, october)
    assert calls == [3, 3]  # the first attempt's numbers were rolled back with it
    assert (run.state, run.issued) == (CloseRunState.DONE, 3)
    assert numbers() == [1, 2, 3]
    assert InvoiceCounter.objects.get(name="invoice").last == 3


@pytest.mark.django_db
def test_a_superseded_attempt_that_fails_records_nothing(
    october: Period, close_queue: CloseQueue
) -> None:
    run = submit(close_queue, october)
    with time_machine.travel(AFTER):
        deliver_the_pull(close_queue, run)
        _, (shard_id,) = close_queue.messages[0]
        assert workflow._claim_shard(shard_id) == 1  # a slow worker, its lease about to end
    with time_machine.travel(AFTER + timedelta(seconds=settings.CLOSE_LEASE_SECONDS + 1)):
        assert workflow._claim_shard(shard_id) == 2  # handed on by the sweep
        workflow._shard_failed(shard_id, 1, "the slow one's late error", final=True)
    shard = CloseShard.objects.get(pk=shard_id)
    assert (shard.state, shard.attempts, shard.error) == (CloseShardState.RUNNING, 2, "")
    assert shard.run.state == CloseRunState.BUILDING


@pytest.mark.django_db
def test_the_sweep_asks_again_for_a_lost_message_only_when_the_queue_is_empty(
    october: Period, close_queue: CloseQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge import queues

    waiting = [1]
    monkeypatch.setattr(queues, "backlog", lambda queue=None: waiting[0])
    submit(close_queue, october)
    close_queue.messages.clear()  # the broker lost the pull's message
    with time_machine.travel(AFTER), close_queue.commits():
        assert workflow.sweep() == 0  # something waits: it may be on its way
        waiting[0] = 0
        assert workflow.sweep() == 1
    with time_machine.travel(AFTER):
        close_queue.deliver_all()
    assert CloseRun.objects.get().state == CloseRunState.DONE


# --- The pull in shards ---------------------------------------------------------------------


def pages_in_shards(settings: Any, per_page: int = 2) -> None:
    """Every usage page its own pull shard."""
    settings.SOLUSIO_PER_PAGE = per_page
    settings.CLOSE_PULL_PAGES = 1
    settings.SOLUSIO_RETRY_BASE_DELAY = 0.01


def pull_shards(run: CloseRun) -> list[tuple[Any, ...]]:
    parts = run.shards.filter(stage=CloseShardStage.PULL).order_by("index")
    return list(parts.values_list("first_part", "last_part", "state", "rows"))


@pytest.mark.django_db
def test_the_pull_is_cut_into_page_shards_and_each_row_is_stored_once(
    october: Period, close_queue: CloseQueue, settings: Any
) -> None:
    clean = clean_run_state(october)  # one pull shard, every page
    rows = sorted(UsageRecord.objects.values_list("server_id", "item", "started_at", "hours"))
    empty_period()
    pages_in_shards(settings)
    run = submit(close_queue, october)
    with time_machine.travel(AFTER):
        close_queue.deliver_one()  # the pull's start: a shard a page
        assert {t.name for t, _ in close_queue.messages} == {"usage.tasks.close_shard"}
        pages = len(close_queue.messages)
        assert pages == (len(rows) + 1) // 2 > 2
        close_queue.deliver_all()
    run.refresh_from_db()
    assert (run.state, run.rows, run.orphans) == (CloseRunState.DONE, len(rows), 2)
    # The last part is open-ended: SolusIO may have more pages by the time it is read.
    expected = [(p, p, CloseShardState.DONE, 2) for p in range(1, pages)]
    assert pull_shards(run)[:-1] == expected
    assert pull_shards(run)[-1][:3] == (pages, None, CloseShardState.DONE)
    assert (
        sorted(UsageRecord.objects.values_list("server_id", "item", "started_at", "hours")) == rows
    )
    assert state() == clean  # the same invoices as from one part
    assert UsagePull.objects.get(period=october.month).rows == len(rows)


@pytest.mark.django_db
def test_a_pull_shard_solusio_fails_is_retried_and_stores_nothing_twice(
    october: Period, close_queue: CloseQueue, settings: Any, sim: SimulatorInfo
) -> None:
    clean = clean_run_state(october)
    count = UsageRecord.objects.count()
    empty_period()
    pages_in_shards(settings)
    run = submit(close_queue, october)
    with time_machine.travel(AFTER):
        close_queue.deliver_one()  # the pull's start
        close_queue.deliver_one()  # page 1 stored
        # Page 2's shard: SolusIO fails every try of its first attempt, then recovers.
        sim.control.fail_next(
            "error", settings.SOLUSIO_RETRY_MAX_ATTEMPTS, path="/usage", status=503
        )
        close_queue.deliver_all()
    run.refresh_from_db()
    assert run.state == CloseRunState.DONE
    second = run.shards.get(stage=CloseShardStage.PULL, index=1)
    assert (second.attempts, second.state, second.error, second.rows) == (
        2,
        CloseShardState.DONE,
        "",
        2,
    )
    assert (run.rows, UsageRecord.objects.count()) == (count, count)
    assert state() == clean


@pytest.mark.django_db
def test_pages_beyond_the_count_are_read_by_the_last_pull_shard(
    october: Period, close_queue: CloseQueue, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from solusio.client import SolusIOClient

    clean = clean_run_state(october)
    count = UsageRecord.objects.count()
    empty_period()
    pages_in_shards(settings)
    # SolusIO said two pages when the pull began; more came by the time they were read.
    monkeypatch.setattr(SolusIOClient, "usage_page_count", lambda self, start, end: 2)
    run = close_submitted(close_queue, october)
    assert pull_shards(run) == [
        (1, 1, CloseShardState.DONE, 2),
        (2, None, CloseShardState.DONE, count - 2),
    ]
    assert (run.state, run.rows) == (CloseRunState.DONE, count)
    assert state() == clean


@pytest.mark.django_db
def test_a_lost_pull_shard_is_sent_again_by_the_sweep_and_the_pull_ends_once(
    october: Period, close_queue: CloseQueue, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge import queues

    monkeypatch.setattr(queues, "backlog", lambda queue=None: 0)  # nothing else queued
    clean = clean_run_state(october)
    empty_period()
    pages_in_shards(settings)
    run = submit(close_queue, october)
    with time_machine.travel(AFTER):
        close_queue.deliver_one()  # the pull's start
        close_queue.messages.pop(0)  # the broker lost the first page's message
        close_queue.deliver_all()  # the other pages
        run.refresh_from_db()
        assert run.state == CloseRunState.PULLING
        assert run.lease_until is None  # the pull waits for its shard, not for a worker
        with close_queue.commits():
            assert workflow.sweep() == 1  # the lost shard, not the waiting pull
        assert [t.name for t, _ in close_queue.messages] == ["usage.tasks.close_shard"]
        close_queue.deliver_all()
    run.refresh_from_db()
    assert (run.state, run.issued) == (CloseRunState.DONE, 3)
    assert state() == clean


@pytest.mark.django_db
def test_a_customer_added_between_closes_is_billed_by_the_next_one(
    october: Period, close_queue: CloseQueue, settings: Any, customers: list[Customer]
) -> None:
    pages_in_shards(settings)
    first = close_submitted(close_queue, october)
    assert first.orphans == 2  # user 4's rows: no customer yet
    # Each worker reads the customers once per run: the next run reads them anew.
    Customer.objects.create(id=4, email="customer4@example.test", currency=customers[0].currency)
    second = close_submitted(close_queue, october)
    assert (second.state, second.orphans) == (CloseRunState.DONE, 0)
    assert Invoice.objects.filter(customer_id=4, period=october.month).exists()


@pytest.mark.django_db
def test_numbers_follow_the_customers_whatever_order_the_drafts_were_built_in(
    october: Period, monkeypatch: pytest.MonkeyPatch
) -> None:
    from usage import build, invoice_states
    from usage.cycle import CloseSummary

    with time_machine.travel(AFTER):
        close.close_cycle(period=october, auto_issue=False)
    # Customer 1's draft built again, last: its id is now the highest (as when shards
    # build side by side).
    Invoice.objects.filter(customer_id=1).delete()
    build.build_invoices(period=october, summary=CloseSummary("2026-10", False), customer_id=1)
    by_id = list(Invoice.objects.order_by("id").values_list("customer_id", flat=True))
    assert by_id == [2, 3, 1]
    monkeypatch.setattr(invoice_states, "ISSUE_BATCH", 1)
    ids = Invoice.objects.values_list("id", flat=True)
    assert invoice_states.issue_invoices(invoice_ids=ids) == 3
    by_number = Invoice.objects.order_by("number").values_list("customer_id", "number")
    assert list(by_number) == [(1, 1), (2, 2), (3, 3)]
