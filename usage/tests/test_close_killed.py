"""A close whose process is killed (SIGKILL) mid-build, then re-run: one clean run's state."""

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from solusio.testing import SimulatorInfo, fast_client
from usage import close
from usage.models import (
    CloseRun,
    CloseRunState,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    UsagePull,
    UsageRecord,
)
from usage.rules import period_of_month
from users.models import Customer

ROOT = Path(__file__).resolve().parents[2]
OCT = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
pytestmark = pytest.mark.slow

# Runs `manage.py close_cycle` in its own process and kills that process with SIGKILL
# right after the second build batch (one customer per batch) has committed.
SCRIPT = textwrap.dedent(
    """
    import os, signal, django
    django.setup()
    from django.core.management import call_command
    from usage import build
    write, built = build._write_batch, []
    def write_then_die(period, drafts, summary, now):
        write(period, drafts, summary, now)
        built.extend(drafts)
        if len(built) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    build._write_batch = write_then_die
    call_command("close_cycle", "--period", "2026-10", "--issue", "yes")
    """
)


def state() -> list[tuple[Any, ...]]:
    invoices = Invoice.objects.order_by("customer_id").values_list(
        "customer_id", "status", "number", "tokens", "total", "fingerprint"
    )
    lines = InvoiceLine.objects.order_by("invoice__customer_id", "position").values_list(
        "invoice__customer_id", "position", "server_id", "tokens", "amount"
    )
    return [*invoices, *lines]


def _processes_running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.django_db(transaction=True)
def test_a_killed_close_rerun_ends_as_one_clean_run(
    sim: SimulatorInfo, customers: list[Customer], add_server: Callable[..., Any]
) -> None:
    """The killed close's run record stays "building"; the next close finds it under the
    lock it held, marks it failed and closes the period itself."""
    for user in (1, 2, 3):
        add_server(user, 1, OCT - 24 * H)
        add_server(user, 5, OCT + user * 24 * H, OCT + user * 24 * H + 50 * H)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridge.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SOLUSIO_API_URL": sim.url,
        "SOLUSIO_API_TOKEN": sim.token,
        "SOLUSIO_VERIFY_TLS": "0",
        "CLOSE_BUILD_BATCH": "1",
    }
    marker = f"# killed-close-{os.getpid()}"
    killed = subprocess.run(
        [sys.executable, "-c", SCRIPT + marker], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert _processes_running(marker) == []
    assert Invoice.objects.count() == 2  # two batches committed, then the kill
    assert not Invoice.objects.exclude(number=None).exists()  # nothing issued yet
    assert UsagePull.objects.get().closed_at is None

    period = period_of_month(2026, 10, "UTC")
    with fast_client(sim) as client:
        close.close_cycle(period=period, client=client, auto_issue=True)
    after_kill = state()
    killed_run, rerun = CloseRun.objects.order_by("pk")
    assert killed_run.state == CloseRunState.FAILED
    assert "closing process ended" in killed_run.error
    assert (rerun.state, rerun.issued) == (CloseRunState.DONE, 3)

    Invoice.objects.all().delete()
    UsageRecord.objects.all().delete()
    UsagePull.objects.all().delete()
    InvoiceCounter.objects.update(last=0)
    with fast_client(sim) as client:
        close.close_cycle(period=period, client=client, auto_issue=True)
    assert state() == after_kill
    assert [row[2] for row in after_kill[:3]] == [1, 2, 3]
