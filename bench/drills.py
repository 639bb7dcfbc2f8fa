#!/usr/bin/env python
"""Fault drills: break one piece of the daemon on purpose and count what the customers lose.

    .venv/bin/python bench/drills.py [--only NAME] [--cycles 3] [--edits 200]
                                     [--customers 500] [--close-customers 2000]

Drills (NAME): broker_down, worker_kill, close_kill, close_worker_kill, database_outage,
redis_restore. Each runs in its own child process on its own PostgreSQL database
(drill_NAME, dropped and re-created on the server of --db-url) and its own private
redis-server; the shared Redis is never touched, and the database outage stops a private
PostgreSQL cluster (initdb in a temporary directory), never the shared one. Each prints one
line: attempted, lost, duplicated, stale answers, 500s, and the details; the targets are 0
of each. Exit status 1 when a drill misses a target. The figures and the machine's load go
to docs/reliability.md by hand; each drill's progress and logs go to var/drills/NAME.log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import Processes, free_port, wait_for  # noqa: E402

SIM_TOKEN = "drill-sim-token"
PRICING_TOKEN = "drill-pricing-token"
DRILLS = (
    "broker_down",
    "worker_kill",
    "close_kill",
    "close_worker_kill",
    "database_outage",
    "redis_restore",
)
FIGURES = ("attempted", "lost", "duplicated", "stale", "errors_500")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- set-up shared by the drills ---------------------------------------------------------


def create_database(admin_url: str, name: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def django_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridge.settings",
        # Production mode (DEBUG off) refuses to start without these.
        "DJANGO_SECRET_KEY": "drill-only-secret-key",
        "PRICING_API_TOKEN": PRICING_TOKEN,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SOLUSIO_VERIFY_TLS": "0",
        "SOLUSIO_SYNC_QUEUE": "drill-sync",
        # Production-shaped retries, shorter so that a drill stays within its two minutes.
        "SOLUSIO_RETRY_MAX_ATTEMPTS": "3",
        "SOLUSIO_RETRY_BASE_DELAY": "0.1",
        "SOLUSIO_RETRY_MAX_DELAY": "2",
        "SOLUSIO_SYNC_RETRY_BASE": "1",
        "SOLUSIO_SYNC_RETRY_MAX": "5",
        "SOLUSIO_SYNC_SWEEP_AFTER": "10",
        "LOG_LEVEL": "CRITICAL",
        **extra,
    }
    os.environ.update(env)
    return env


def setup_django(migrate: bool = True) -> None:
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def start_worker(procs: Processes, env: dict[str, str], name: str) -> Any:
    return procs.start(
        [
            sys.executable, "-m", "celery", "-A", "bridge", "worker",
            "--pool", "threads", "--concurrency", "4", "-Q", env["SOLUSIO_SYNC_QUEUE"],
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-l", "critical", "-n", f"{name}@%h",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def sync_setup(
    args: argparse.Namespace, procs: Processes, database: str
) -> tuple[Any, int, dict[str, str], str]:
    """A private broker, a fresh database and an empty simulator that Django (here and in
    the workers started with the returned environment) points at."""
    from django.conf import settings

    redis_port = free_port()
    broker = procs.redis_server(redis_port)
    env = django_env(create_database(args.db_url, database), f"redis://127.0.0.1:{redis_port}/0")
    setup_django()
    _, api_url = procs.simulator(SIM_TOKEN, "--seed-users", "0")
    settings.SOLUSIO_API_URL = api_url
    settings.SOLUSIO_API_TOKEN = SIM_TOKEN
    env.update(SOLUSIO_API_URL=api_url, SOLUSIO_API_TOKEN=SIM_TOKEN)
    return broker, redis_port, env, api_url


def solusio_users(api_url: str) -> dict[int, list[Any]]:
    """SolusIO's users by billing user id (walked with retries: the simulator may still be
    injecting faults for our own reads)."""
    from solusio.client import SolusIOClient

    client = SolusIOClient(api_url, SIM_TOKEN, verify_tls=False)
    try:
        users: dict[int, list[Any]] = {}
        for user in client.iter_users():
            if user.billing_user_id is not None:
                users.setdefault(user.billing_user_id, []).append(user)
        return users
    finally:
        client.close()


def sync_figures(api_url: str, expected: dict[int, str]) -> dict[str, int]:
    """lost: a customer whose SolusIO user is missing or lacks the customer's last e-mail;
    duplicated: a customer with more than one SolusIO user."""
    users = solusio_users(api_url)
    lost = sum(
        1
        for cid, email in expected.items()
        if not any(u.email == email for u in users.get(cid, []))
    )
    duplicated = sum(len(found) - 1 for found in users.values() if len(found) > 1)
    return {"lost": lost, "duplicated": duplicated}


def wait_synced(api_url: str, expected: dict[int, str], timeout: float) -> float:
    """Run the outbox sweep as beat would until SolusIO holds every expected e-mail; the
    seconds it took."""
    from users import sync
    from users.models import SyncRecord, SyncRecordState

    started = time.monotonic()
    last_sweep = started
    while time.monotonic() - started < timeout:
        pending = SyncRecord.objects.exclude(state=SyncRecordState.DONE).count()
        if pending == 0 and sync_figures(api_url, expected)["lost"] == 0:
            break
        if time.monotonic() - last_sweep >= 3:
            sync.sweep()
            last_sweep = time.monotonic()
        time.sleep(0.5)
    return time.monotonic() - started


def create_customers(count: int) -> dict[int, str]:
    from django.db import transaction

    from pricing.models import Currency
    from users import services

    usd, _ = Currency.objects.get_or_create(code="USD", defaults={"token_price": "0.001"})
    expected: dict[int, str] = {}
    for first in range(0, count, 100):
        with transaction.atomic():
            for i in range(first, min(first + 100, count)):
                customer = services.create_customer(email=f"drill{i}@example.com", currency=usd)
                expected[customer.pk] = customer.email
    return expected


# --- the drills ----------------------------------------------------------------------------


def broker_down(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    """Customer edits while the Celery broker is unreachable; then it comes back."""
    broker, redis_port, env, api_url = sync_setup(args, procs, "drill_broker_down")
    from django.db import transaction

    from users import services
    from users.models import Customer

    worker = start_worker(procs, env, "drill-broker")
    expected = create_customers(args.edits)
    wait_synced(api_url, expected, 60)
    log(f"broker_down: {len(expected)} customers in SolusIO; stopping the broker")
    broker.kill()
    broker.wait()
    refused = 0
    started = time.monotonic()
    for customer in Customer.objects.order_by("pk"):
        new_email = f"edited-{customer.pk}@example.com"
        try:
            # What the admin's change form does: one transaction per save.
            with transaction.atomic():
                services.update_customer(customer=customer, changes={"email": new_email})
            expected[customer.pk] = new_email
        except Exception as exc:  # the admin would show an error: refused, not lost
            refused += 1
            log(f"  edit of {customer.pk} refused: {type(exc).__name__}: {exc}")
    edit_seconds = time.monotonic() - started
    log(
        f"broker_down: {args.edits} edits in {edit_seconds:.1f} s with the broker down; "
        "restarting it"
    )
    procs.redis_server(redis_port)
    took = wait_synced(api_url, expected, 90)
    figures = sync_figures(api_url, expected)
    procs.stop(worker)
    return {
        "attempted": args.edits,
        **figures,
        "stale": 0,
        "errors_500": 0,
        "details": f"{refused} edits refused, edits took {edit_seconds:.1f} s with the broker "
        f"down; every change in SolusIO {took:.1f} s after the broker came back",
    }


def worker_kill(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    """kill -9 of a worker, --cycles times, during a user sync with 20 % SolusIO faults."""
    _, _, env, api_url = sync_setup(args, procs, "drill_worker_kill")
    from solusio.testing import SimulatorControl
    from users import sync
    from users.models import SyncRecord, SyncRecordState

    expected = create_customers(args.customers)
    control = SimulatorControl(api_url.rsplit("/api/v1", 1)[0])
    kinds = ("error", "rate_limit", "drop")
    control.set_faults(rates={k: 0.2 / len(kinds) for k in kinds}, retry_after=1, error_status=500)
    workers = [start_worker(procs, env, f"drill-kill{n}") for n in range(2)]
    rng = random.Random(args.seed)
    kills = 0
    started = time.monotonic()
    last_sweep = started
    while time.monotonic() - started < 120:
        done = SyncRecord.objects.filter(state=SyncRecordState.DONE).count()
        if kills < args.cycles and done >= (kills + 1) * len(expected) // (args.cycles + 2):
            victim = rng.randrange(len(workers))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            kills += 1
            log(f"worker_kill: kill -9 #{kills} at {done} of {len(expected)} records done")
            workers[victim] = start_worker(procs, env, f"drill-kill{victim}-{kills}")
        if kills >= args.cycles and done == len(expected):
            break
        if time.monotonic() - last_sweep >= 3:
            sync.sweep()
            last_sweep = time.monotonic()
        time.sleep(0.2)
    control.clear_faults()
    took = wait_synced(api_url, expected, 60)
    figures = sync_figures(api_url, expected)
    calls = control.calls()
    for worker in workers:
        procs.stop(worker)
    return {
        "attempted": len(expected),
        **figures,
        "stale": 0,
        "errors_500": 0,
        "details": f"{kills} kill -9, {sum(1 for c in calls if c['fault'])} of {len(calls)} "
        f"SolusIO calls faulted; converged {time.monotonic() - started:.1f} s after the "
        f"workers started (last sweep wait {took:.1f} s)",
    }


def close_seed(args: argparse.Namespace, procs: Processes) -> tuple[Callable[[str], str], str]:
    """The close drills' seeded database (invoicing's customers, no usage) and a simulator
    with their servers; returns a function that makes a fresh copy of the seed by name (its
    URL) and the simulator's API URL."""
    import psycopg
    from psycopg import sql

    from bench import invoicing

    seed_url = create_database(args.db_url, "drill_close_seed")
    django_env(seed_url, "")
    os.environ.pop("REDIS_URL")
    setup_django(migrate=False)
    invoicing.seed(args.close_customers)
    from django.db import connections

    connections.close_all()

    def copy_of_seed(name: str) -> str:
        with psycopg.connect(args.db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE drill_close_seed").format(sql.Identifier(name))
            )
        return seed_url.rsplit("/", 1)[0] + f"/{name}"

    _, api_url = procs.simulator(
        SIM_TOKEN,
        "--seed-users", str(args.close_customers),
        "--seed-servers", str(args.close_customers * 2),
        "--now", "2026-11-15T00:00:00+00:00",
    )  # fmt: skip
    return copy_of_seed, api_url


def close_invoices(database_url: str) -> list[tuple[int, int | None, str, str]]:
    """(customer, number, status, total) of every invoice."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        return [
            (cid, number, status, str(total))
            for cid, number, status, total in conn.execute(
                "SELECT customer_id, number, status, total FROM usage_invoice"
            )
        ]


class CloseChecks:
    """Each drilled close compared with the uninterrupted one: invoices lost, duplicated or
    different (status or total), runs with a gap in the numbers."""

    def __init__(self, reference: list[tuple[int, int | None, str, str]]) -> None:
        self.reference = {cid: (status, total) for cid, _, status, total in reference}
        self.lost = self.duplicated = self.differ = self.gaps = 0

    def check(self, drilled: list[tuple[int, int | None, str, str]]) -> None:
        per_customer: dict[int, int] = {}
        for cid, *_ in drilled:
            per_customer[cid] = per_customer.get(cid, 0) + 1
        numbers = sorted(n for _, n, _, _ in drilled if n is not None)
        self.gaps += numbers != list(range(1, len(numbers) + 1))
        self.lost += len(set(self.reference) - set(per_customer))
        self.duplicated += sum(n - 1 for n in per_customer.values() if n > 1)
        self.differ += sum(
            1 for cid, _, st, total in drilled if self.reference.get(cid) != (st, total)
        )

    def result(self, cycles: int, details: str) -> dict[str, Any]:
        return {
            "attempted": len(self.reference) * cycles,
            "lost": self.lost,
            "duplicated": self.duplicated,
            # An invoice whose status or total differs from the uninterrupted run's.
            "stale": self.differ,
            "errors_500": 0,
            "details": f"{details}; {self.gaps} runs with a gap in the numbers; "
            f"{self.differ} invoices differ from the uninterrupted run",
            "checks_passed": self.gaps == 0,
        }


def close_kill(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    """manage.py close_cycle (inline, one process) killed -9 at a random moment, then run
    again to the end; --cycles times, each from the same seeded database, each compared
    with an uninterrupted close of it."""
    copy_of_seed, api_url = close_seed(args, procs)
    var_dir = tempfile.mkdtemp(prefix="drill-close-")
    # No REDIS_URL: the invoice e-mails are queued on a throwaway embedded broker.
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(SOLUSIO_API_URL=api_url, SOLUSIO_API_TOKEN=SIM_TOKEN, BRIDGE_VAR_DIR=var_dir)
    command = [sys.executable, "manage.py", "close_cycle", "--period", "2026-10", "--issue", "yes"]

    def close(database_url: str, kill_after: float | None) -> tuple[int | None, float]:
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, "DATABASE_URL": database_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None, time.monotonic() - started
        return proc.returncode, time.monotonic() - started

    ref_url = copy_of_seed("drill_close_ref")
    status, reference_s = close(ref_url, None)
    if status != 0:
        raise SystemExit(f"the uninterrupted close failed ({status})")
    checks = CloseChecks(close_invoices(ref_url))
    log(f"close_kill: uninterrupted close in {reference_s:.1f} s, {len(checks.reference)} invoices")
    rng = random.Random(args.seed)
    kills = 0
    at_kill: list[str] = []
    for cycle in range(args.cycles):
        drill_url = copy_of_seed("drill_close_kill")
        # From a quarter of the close's time on: before that the process is still starting.
        status, seconds = close(drill_url, rng.uniform(0.25, 1.0) * reference_s)
        kills += status is None
        done = close_invoices(drill_url)
        issued = sum(1 for i in done if i[1] is not None)
        at_kill.append(f"{seconds:.1f} s ({len(done)} invoices, {issued} issued)")
        status, _ = close(drill_url, None)
        if status != 0:
            raise SystemExit(f"the close after kill {cycle + 1} failed ({status})")
        checks.check(close_invoices(drill_url))
    shutil.rmtree(var_dir, ignore_errors=True)
    return checks.result(
        args.cycles,
        f"{kills} of {args.cycles} closes killed -9 (uninterrupted: {reference_s:.1f} s, "
        f"{len(checks.reference)} invoices; killed at {', '.join(at_kill)}), each re-run to "
        "the end",
    )


def close_worker_kill(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    """A close submitted to two Celery workers (`close_cycle --submit`), one of them killed
    -9 at a random moment and started again (as compose's restart policy does); the close is
    not run again: its shards are retried, the lost one handed on after its lease (10 s
    here). --cycles times, each from the same seeded database, each compared with an
    uninterrupted close of it on two workers."""
    import psycopg

    from bench import invoicing

    copy_of_seed, api_url = close_seed(args, procs)
    redis_port = free_port()
    procs.redis_server(redis_port)
    log_dir = ROOT / "var" / "drills" / "close_worker_kill"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    var_dir = tempfile.mkdtemp(prefix="drill-close-workers-")
    command = [
        sys.executable, "manage.py", "close_cycle", "--period", "2026-10", "--issue", "yes",
        "--submit",
    ]  # fmt: skip
    rng = random.Random(args.seed)

    def close(database_url: str, kill_at: tuple[str, int] | None) -> tuple[float, str]:
        """The submitted close to its end; with `kill_at` (a stage, a count), one worker
        killed -9 once that many of the stage's shards are done."""
        env = invoicing.worker_env(
            database_url,
            f"redis://127.0.0.1:{redis_port}/0",
            api_url,
            BRIDGE_VAR_DIR=var_dir,
            CLOSE_LEASE_SECONDS="10",
            # About twenty shards a stage: a kill always finds shards left to lose.
            CLOSE_SHARD_SIZE=str(max(1, args.close_customers // 20)),
            CLOSE_PULL_PAGES=str(max(1, args.close_customers // 500)),
            SOLUSIO_API_TOKEN=SIM_TOKEN,
        )
        workers = invoicing.Workers(env, log_dir)
        try:
            workers.start(2)
            started = time.monotonic()
            submitter = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            killed = ""
            if kill_at is not None:
                # A random moment of the pull or the build: once `kill_at` of its stage's
                # shards are done.
                while not _shards_done(database_url, *kill_at) and submitter.poll() is None:
                    time.sleep(0.02)
                if submitter.poll() is not None:
                    killed = "too late: the close had finished"
                else:
                    victim = rng.choice([p for p in workers.procs if p.poll() is None])
                    victim.kill()
                    victim.wait()
                    killed = _close_progress(database_url, time.monotonic() - started)
                    workers.start(1)
            _, err = submitter.communicate(timeout=600)
            if submitter.returncode != 0:
                raise SystemExit(f"the submitted close failed: {err.decode()[-2000:]}")
            return time.monotonic() - started, killed
        finally:
            workers.stop()

    ref_url = copy_of_seed("drill_close_workers_ref")
    reference_s, _ = close(ref_url, None)
    checks = CloseChecks(close_invoices(ref_url))
    with psycopg.connect(ref_url) as conn:
        stages, shards = conn.execute("SELECT seconds, shards_total FROM usage_closerun").fetchone()  # type: ignore[misc]
        (pull_shards,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM usage_closeshard WHERE stage = 'pull'"
        ).fetchone()
    log(
        f"close_worker_kill: uninterrupted in {reference_s:.1f} s ({stages}), "
        f"{len(checks.reference)} invoices, {pull_shards} pull and {shards} build shards"
    )
    at_kill: list[str] = []
    took: list[str] = []
    for _ in range(args.cycles):
        drill_url = copy_of_seed("drill_close_workers")
        stage = rng.choice(["pull", "build"])
        seconds, killed = close(
            drill_url, (stage, rng.randrange(pull_shards if stage == "pull" else shards))
        )
        at_kill.append(killed)
        took.append(f"{seconds:.0f}")
        checks.check(close_invoices(drill_url))
        log(f"close_worker_kill: killed {killed}; the close ended after {seconds:.1f} s")
    shutil.rmtree(var_dir, ignore_errors=True)
    return checks.result(
        args.cycles,
        f"one of 2 workers killed -9 in each of {args.cycles} closes (uninterrupted: "
        f"{reference_s:.1f} s, {len(checks.reference)} invoices; killed at "
        f"{'; '.join(at_kill)}; closes took {', '.join(took)} s), none run again",
    )


def _shards_done(database_url: str, stage: str, count: int) -> bool:
    """The close is in `stage` ("pull" or "build") with `count` of its shards done."""
    import psycopg

    run_state = {"pull": "pulling", "build": "building"}[stage]
    with psycopg.connect(database_url) as conn:
        (done,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM usage_closeshard WHERE state = 'done' AND stage = %s",
            [stage],
        ).fetchone()
        (active,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM usage_closerun WHERE state = %s", [run_state]
        ).fetchone()
    return bool(active) and done >= count


def _close_progress(database_url: str, seconds: float) -> str:
    """Where the close was when a worker was killed: its stage and shards done ("" when
    no run has started)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT r.state, count(s.id) FILTER (WHERE s.state = 'done'), count(s.id) "
            "FROM usage_closerun r LEFT JOIN usage_closeshard s ON s.run_id = r.id "
            "AND s.stage = (CASE r.state WHEN 'pulling' THEN 'pull' ELSE 'build' END) "
            "GROUP BY r.id ORDER BY r.id DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return ""
    state, done, total = row
    return f"{seconds:.1f} s ({state}, {done}/{total} shards)"


class Gunicorn:
    def __init__(self, procs: Processes, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = procs.start(
            [sys.executable, "-m", "gunicorn", "-c", "bridge/gunicorn.conf.py", "bridge.wsgi"],
            env={**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}", "GUNICORN_WORKERS": "2"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: self.get("/ping")[0] == 200, 60, "gunicorn")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            url = f"http://127.0.0.1:{self.port}{path}"
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def pricing(self, userid: int) -> tuple[int, bytes]:
        body = f"token={PRICING_TOKEN}&action=GetTokenPricing&userid={userid}".encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/solusio",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - http only
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""  # no answer at all (connection refused or reset)

    def stop(self, procs: Processes) -> None:
        procs.stop(self.proc)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def seed_pricing_customers(count: int) -> None:
    from decimal import Decimal

    from pricing.models import Currency
    from users.models import Customer

    usd, _ = Currency.objects.get_or_create(code="USD", defaults={"token_price": Decimal("0.001")})
    Customer.objects.bulk_create(
        [Customer(id=i, email=f"p{i}@example.com", currency=usd) for i in range(1, count + 1)]
    )


def database_outage(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    """GetTokenPricing load while a private PostgreSQL cluster is stopped and started."""
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    data = Path(tempfile.mkdtemp(prefix="drill-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres")
    pg_port = free_port()

    def pg_ctl(*what: str) -> None:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-w", "-l",
             str(data / "pg.log"), *what],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data / "db"), "-U", "postgres",
         "--auth=trust"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    options = f"-p {pg_port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl("-o", options, "start")
    try:
        redis_port = free_port()
        procs.redis_server(redis_port)
        env = django_env(
            create_database(f"postgres://postgres@127.0.0.1:{pg_port}/postgres", "drill"),
            f"redis://127.0.0.1:{redis_port}/0",
        )
        setup_django()
        customers = 1000
        seed_pricing_customers(customers)
        from django.db import connections

        connections.close_all()
        server = Gunicorn(procs, env, data / "gunicorn.log")
        statuses: dict[int, int] = {}
        phases: list[tuple[float, int]] = []
        stop = threading.Event()
        lock = threading.Lock()

        def load(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                status, _ = server.pricing(rng.randint(1, customers))
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    phases.append((time.monotonic(), status))

        threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        down_at = time.monotonic()
        pg_ctl("-m", "fast", "stop")
        log("database_outage: PostgreSQL stopped")
        time.sleep(args.outage)
        pg_ctl("-o", options, "start")
        up_at = time.monotonic()
        log("database_outage: PostgreSQL started again")
        time.sleep(8)
        stop.set()
        for thread in threads:
            thread.join()
        server.stop(procs)
        after = [s for t, s in phases if t >= up_at]
        recovered = next(
            (t - up_at for i, (t, _) in enumerate(phases) if t >= up_at
             and all(s == 200 for _, s in phases[i:])),
            None,
        )  # fmt: skip
        during = [s for t, s in phases if down_at <= t < up_at]
        log_lines = (data / "gunicorn.log").read_text(errors="replace").count("\n")
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)
    attempted = sum(statuses.values())
    unexpected = {s: n for s, n in statuses.items() if s not in (200, 503, 500)}
    return {
        "attempted": attempted,
        "lost": 0,
        "duplicated": 0,
        "stale": 0,
        "errors_500": statuses.get(500, 0),
        "details": f"answers by status {dict(sorted(statuses.items()))}; during the "
        f"{args.outage:.0f} s outage {during.count(200)} x 200, {during.count(503)} x 503; "
        f"after the restart {len(after)} requests, all 200 from "
        f"{'never' if recovered is None else f'+{recovered:.1f} s'}; "
        f"{log_lines} log lines; other statuses {unexpected or 'none'}",
        "recovered_s": recovered,
    }


def redis_restore(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    """After a price change, and after one made while Redis was full or down, a Redis restart
    or a restore of an older RDB snapshot: is any answer from before the change served?"""
    from decimal import Decimal

    import redis

    data = Path(tempfile.mkdtemp(prefix="drill-redis-"))
    redis_port = free_port()
    persistence = ("--dir", str(data), "--dbfilename", "dump.rdb")
    server_proc = procs.redis_server(redis_port, *persistence)
    env = django_env(
        create_database(args.db_url, "drill_redis_restore"), f"redis://127.0.0.1:{redis_port}/0"
    )
    setup_django()
    from pricing import services as pricing_services
    from pricing.models import Currency

    customers = 100
    seed_pricing_customers(customers)
    gunicorn = Gunicorn(procs, env, data / "gunicorn.log")
    client = redis.Redis(port=redis_port)
    results: dict[str, int] = {}
    attempted = errors_500 = 0
    price = [1]

    def change_price() -> None:
        price[0] += 1
        usd = Currency.objects.get(code="USD")
        usd.token_price = Decimal(price[0]) / 1000
        try:
            usd.save()  # its commit hook bumps the generation; with Redis down it cannot
        except Exception as exc:
            log(f"  the change was refused: {type(exc).__name__}: {exc}")

    def ask_all() -> int:
        """Every customer's answer, twice (the second from the cache); how many differ from
        the database's answer now."""
        nonlocal attempted, errors_500
        stale = 0
        for _ in range(2):
            for userid in range(1, customers + 1):
                status, body = gunicorn.pricing(userid)
                attempted += 1
                errors_500 += status == 500
                fresh = pricing_services.render(userid)[0]
                if status == 200 and json.loads(body) != json.loads(fresh):
                    stale += 1
        return stale

    def restart(snapshot: Path | None = None) -> None:
        nonlocal server_proc
        if snapshot is None:
            client.shutdown(save=True)
        else:
            client.shutdown(nosave=True)
        server_proc.wait()
        if snapshot is not None:
            shutil.copy(snapshot, data / "dump.rdb")
        server_proc = procs.redis_server(redis_port, *persistence)

    ask_all()  # warm: every answer cached
    # The control: a bulk update sends no signal, so nothing bumps the generation (its
    # callers must); if this finds no stale answer, the drill cannot see them.
    Currency.objects.filter(code="USD").update(token_price=Decimal("0.0005"))
    control = ask_all()
    pricing_services.bump_generation()
    ask_all()
    change_price()
    results["after a change"] = ask_all()
    # Redis full (noeviction): reads still answered, the bump's write refused.
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", max(1, int(client.info("memory")["used_memory"]) // 2))
    change_price()
    results["after a change whose bump a full Redis refused"] = ask_all()
    client.config_set("maxmemory", 0)
    pricing_services.bump_generation()
    ask_all()
    change_price()
    ask_all()
    restart()
    results["after a restart"] = ask_all()
    client.save()
    shutil.copy(data / "dump.rdb", data / "old.rdb")
    change_price()
    ask_all()
    restart(data / "old.rdb")
    results["after a restore of an older snapshot"] = ask_all()
    client.save()
    client.shutdown(nosave=True)
    server_proc.wait()
    change_price()
    server_proc = procs.redis_server(redis_port, *persistence)
    results["after a change made while Redis was down"] = ask_all()
    gunicorn.stop(procs)
    shutil.rmtree(data, ignore_errors=True)
    return {
        "attempted": attempted,
        "lost": 0,
        "duplicated": 0,
        "stale": sum(results.values()),
        "errors_500": errors_500,
        "details": "stale answers "
        + ", ".join(f"{k}: {v}" for k, v in results.items())
        + f" (of {2 * customers} each); control (a change nothing announced): {control} stale",
        # A drill that cannot see a stale answer must not pass.
        "checks_passed": control > 0,
    }


# --- running them --------------------------------------------------------------------------


def run_one(args: argparse.Namespace) -> int:
    procs = Processes()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = globals()[args.run](args, procs)
    finally:
        procs.stop_all()
    print(json.dumps(result))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=DRILLS, action="append", help="repeatable")
    parser.add_argument("--cycles", type=int, default=3, help="kill -9 cycles per kill drill")
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--customers", type=int, default=500, help="worker_kill's sync")
    parser.add_argument("--close-customers", type=int, default=2000)
    parser.add_argument("--outage", type=float, default=5.0, help="seconds PostgreSQL is down")
    parser.add_argument("--seed", type=int, default=20261129, help="random kill moments")
    parser.add_argument(
        "--db-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a database on the server where the drills' databases are created",
    )
    parser.add_argument("--run", choices=DRILLS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        return run_one(args)

    ok = True
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} "
          f"({os.cpu_count()} cores)")  # fmt: skip
    print(f"{'drill':<16} {'seconds':>7} " + " ".join(f"{f:>10}" for f in FIGURES))
    for name in args.only or DRILLS:
        passed = [a for a in sys.argv[1:] if not a.startswith("--only") and a not in DRILLS]
        started = time.monotonic()
        # Its progress and the daemon's own logging (a broker or database that is down on
        # purpose logs plenty) go to a file, read when the drill fails.
        log_path = ROOT / "var" / "drills" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as stderr:
            out = subprocess.run(
                [sys.executable, __file__, *passed, "--run", name],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        seconds = time.monotonic() - started
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            print(
                f"{name:<16} {seconds:7.1f} FAILED (exit {out.returncode}): {log_path}", flush=True
            )
            ok = False
            continue
        result = json.loads(lines[-1])
        met = all(result[f] == 0 for f in FIGURES[1:]) and result.get("checks_passed", True)
        ok &= met
        print(
            f"{name:<16} {seconds:7.1f} " + " ".join(f"{result[f]:>10}" for f in FIGURES)
            + f"  {'met' if met else 'NOT MET'}\n    {result['details']}",
            flush=True,
        )  # fmt: skip
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"targets (0 lost, 0 duplicated, 0 stale, 0 x 500): {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
