"""The build in two processes (CLOSE_BUILD_PROCESSES=2): a forked child builds half of the
customers. Real commits (the child has its own database session), the simulator over HTTP."""

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from solusio.client import SolusIOClient
from solusio.testing import SimulatorInfo
from usage import build, close, cycle
from usage.models import Invoice, InvoiceLine, InvoiceStatus
from usage.rules import Period, period_of_month
from usage.tests.conftest import BuildBatchHook
from users.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)

OCT = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
AFTER = datetime(2029, 1, 1, tzinfo=UTC)


@pytest.fixture
def october(customers: list[Customer], add_server: Callable[..., Any]) -> Period:
    for user in (1, 2, 3, 4):  # 4 has no customer: orphan usage
        add_server(user, 1, OCT - 24 * H)
        add_server(user, 5, OCT + user * 24 * H, OCT + user * 24 * H + 50 * H)
        add_server(user, 2, OCT + 3 * H, resizes=[(OCT + 200 * H, 3)])
    return period_of_month(2026, 10, "UTC")


@pytest.fixture
def children(forks: list[int], settings: Any) -> list[int]:
    """One customer per batch, so three customers are enough for two processes; the pids
    of the build processes started."""
    settings.CLOSE_BUILD_PROCESSES = 2
    settings.CLOSE_BUILD_BATCH = 1
    return forks


def _invoices() -> dict[int, tuple[Any, ...]]:
    return {
        inv.customer_id: (
            inv.total,
            inv.tokens,
            tuple(inv.lines.order_by("position").values_list("server_id", "rule", "amount")),
        )
        for inv in Invoice.objects.prefetch_related("lines")
    }


def test_two_processes_build_what_one_builds(
    client: SolusIOClient, october: Period, children: list[int], settings: Any
) -> None:
    summary = close.close_cycle(period=october, client=client, now=AFTER)
    assert len(children) == 1  # a child built part of the drafts
    assert summary.created == 3
    built_in_two = _invoices()
    assert sorted(built_in_two) == [1, 2, 3]
    assert all(len(lines) == 4 for _, _, lines in built_in_two.values())  # resize: 2 segments

    # The same drafts built by one process are recognised as identical, line for line.
    settings.CLOSE_BUILD_PROCESSES = 1
    again = cycle.CloseSummary("2026-10", False)
    build.build_invoices(period=october, summary=again)
    assert (again.unchanged, again.created, again.updated) == (3, 0, 0)
    assert len(children) == 1
    Invoice.objects.all().delete()
    build.build_invoices(period=october, summary=cycle.CloseSummary("2026-10", False))
    assert _invoices() == built_in_two


def test_a_failing_child_fails_the_close_and_a_rerun_completes_it(
    client: SolusIOClient, october: Period, children: list[int], after_build_batch: BuildBatchHook
) -> None:
    parent = os.getpid()

    def crash_in_child(done: int) -> None:
        if os.getpid() != parent:
            raise RuntimeError("the build process crashed")

    after_build_batch(crash_in_child)
    with pytest.raises(cycle.CloseError, match="building invoices failed") as failed:
        close.close_cycle(period=october, client=client, now=AFTER, auto_issue=True)
    assert "the build process crashed" in str(failed.value.__cause__)
    assert not Invoice.objects.filter(status=InvoiceStatus.ISSUED).exists()  # nothing issued

    after_build_batch(None)
    summary = close.close_cycle(period=october, client=client, now=AFTER, auto_issue=True)
    assert summary.issued == 3
    assert Invoice.objects.count() == 3
    assert InvoiceLine.objects.count() == 12
    assert sorted(n or 0 for n in Invoice.objects.values_list("number", flat=True)) == [1, 2, 3]


def test_a_child_killed_by_a_signal_is_reported(
    client: SolusIOClient, october: Period, children: list[int], after_build_batch: BuildBatchHook
) -> None:
    parent = os.getpid()

    def die_in_child(done: int) -> None:
        if os.getpid() != parent:
            os.kill(os.getpid(), 9)

    after_build_batch(die_in_child)
    with pytest.raises(cycle.CloseError) as failed:
        close.close_cycle(period=october, client=client, now=AFTER)
    assert "died (signal 9)" in str(failed.value.__cause__)


def test_when_the_parent_fails_the_child_is_stopped_and_reaped(
    client: SolusIOClient, october: Period, children: list[int], after_build_batch: BuildBatchHook
) -> None:
    parent = os.getpid()

    def crash_in_parent(done: int) -> None:
        if os.getpid() == parent:
            raise RuntimeError("the closing process failed")

    after_build_batch(crash_in_parent)
    with pytest.raises(RuntimeError, match="closing process failed"):
        close.close_cycle(period=october, client=client, now=AFTER)
    assert len(children) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(children[0], os.WNOHANG)  # already reaped: no zombie left behind
    after_build_batch(None)
    close.close_cycle(period=october, client=client, now=AFTER)
    assert Invoice.objects.count() == 3


def test_inside_a_transaction_one_process_builds(
    client: SolusIOClient, october: Period, children: list[int]
) -> None:
    from django.db import transaction

    with transaction.atomic():  # a child could not see these rows
        close.close_cycle(period=october, client=client, now=AFTER)
    assert children == []
    assert Invoice.objects.count() == 3


class _Interrupted(BaseException):
    """What Celery's soft time limit (or a Ctrl-C) raises in the closing process."""


def test_a_parent_interrupted_while_waiting_stops_its_child(
    client: SolusIOClient, october: Period, children: list[int], after_build_batch: BuildBatchHook
) -> None:
    import signal
    import time

    parent = os.getpid()

    def slow_child_then_interrupted_parent(done: int) -> None:
        if os.getpid() != parent:
            time.sleep(30)  # the child is still building when the parent gives up
        elif done == 2:  # the parent's last batch: from here it waits for the child
            signal.setitimer(signal.ITIMER_REAL, 0.5)

    def interrupt(signum: int, frame: Any) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    after_build_batch(slow_child_then_interrupted_parent)
    try:
        with pytest.raises(_Interrupted):
            close.close_cycle(period=october, client=client, now=AFTER)
        assert len(children) == 1
        # Stopped and reaped: nothing builds on once the close (and its lock) is gone.
        with pytest.raises(ChildProcessError):
            os.waitpid(children[0], os.WNOHANG)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


@pytest.mark.slow
def test_a_real_prefork_worker_closes_the_month_in_two_processes(
    sim: SimulatorInfo, customers: list[Customer], add_server: Callable[..., Any], tmp_path: Any
) -> None:
    """As in production: beat's task in a prefork pool child (a daemon process), which
    forks the build process itself."""
    import subprocess
    import sys
    import time
    import uuid
    from pathlib import Path

    from django.db import connection

    from usage.models import UsagePull
    from usage.tasks import close_previous_period

    for user in (1, 2, 3):
        add_server(user, 1, OCT - 24 * H)
    queue = f"test-close-{uuid.uuid4().hex}"
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridge.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SOLUSIO_API_URL": sim.url,
        "SOLUSIO_API_TOKEN": sim.token,
        "SOLUSIO_VERIFY_TLS": "0",
        "CLOSE_BUILD_PROCESSES": "2",
        "CLOSE_BUILD_BATCH": "1",
        "LOG_LEVEL": "INFO",
    }
    log = tmp_path / "worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "bridge", "worker", "--pool", "prefork",
        "--concurrency", "1", "-Q", queue, "--without-gossip", "--without-mingle",
        "--without-heartbeat", "-l", "info",
    ]  # fmt: skip
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            command, cwd=Path(__file__).resolve().parents[2], env=env, stdout=out, stderr=out
        )
    try:
        close_previous_period.apply_async(queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if UsagePull.objects.filter(closed_at__isnull=False).exists():
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(20)
    text = log.read_text(errors="replace")
    assert UsagePull.objects.filter(closed_at__isnull=False).exists(), text[-3000:]
    assert "2026-10: building 2 customers here and 1 in process" in text
    assert Invoice.objects.count() == 3
    assert InvoiceLine.objects.count() == 3
