#!/usr/bin/env python
"""Benchmark the user sync: customers → outbox → Celery workers → SolusIO (simulator).

    .venv/bin/python bench/sync.py [--customers 10000] [--workers 2] [--concurrency 8]
                                   [--fault-rate 0.2] [--skip-faults]

What it does, in order:

1. Creates the PostgreSQL database `bench_sync` (dropped and re-created), migrates it, and
   starts a private redis-server on a free port as the broker (the shared Redis is never
   touched) and the SolusIO simulator as its own process (`python -m solusio.simulator`,
   no seeded users).
2. Run "no faults": creates --customers customers through `users.services.create_customer`
   (the path the admin, API and importer take: customer + outbox record in one
   transaction, a delivery task on commit), with no worker running, so the queue and the
   outbox hold them all. Then starts --workers Celery worker processes (threads pool,
   --concurrency each) and times from their start until every customer exists in the
   simulator. A stand-in for beat runs the outbox sweep every --sweep-every seconds.
3. Checks the result by walking all SolusIO users: duplicates (a billing user id on more
   than one user: must be 0), lost (a customer without a SolusIO user: must be 0), and
   outbox records not delivered.
4. Run "faults": the same with fresh tables and a fresh simulator whose calls fail at
   --fault-rate, spread evenly over 500, 429 (Retry-After 1 s) and dropped connections.
5. Prints users/s of both runs and the verdict against the targets: >= 200 users/s
   without faults; with faults, converged within 3x the fault-free time.

Worker processes, the simulator and redis-server are always stopped. Exit status 1 when a
run has duplicates, lost customers, or times out (--timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DB_NAME = "bench_sync"
SIM_TOKEN = "bench-sync-token"
TARGET_USERS_PER_S = 200.0
TARGET_FAULT_FACTOR = 3.0

from bench._common import Processes, free_port, wait_for  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--skip-faults", action="store_true", help="only the fault-free run")
    parser.add_argument("--sweep-every", type=float, default=10.0, help="seconds (beat: 60)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument(
        "--db-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a database on the server where bench_sync is created",
    )
    args = parser.parse_args()

    procs = Processes()
    # `timeout` and Ctrl-C: stop the workers, simulator and redis-server on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args, procs)
    finally:
        procs.stop_all()


def run(args: argparse.Namespace, procs: Processes) -> int:
    import psycopg

    admin_url = args.db_url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    db_url = admin_url.rsplit("/", 1)[0] + f"/{DB_NAME}"

    redis_port = free_port()
    procs.redis_server(redis_port)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridge.settings",
        # Production mode (DEBUG off) refuses to start without these.
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret-key"),
        "PRICING_API_TOKEN": os.environ.get("PRICING_API_TOKEN", "bench-only-token"),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SOLUSIO_VERIFY_TLS": "0",
        "SOLUSIO_SYNC_QUEUE": "bench-sync",
        # Production-shaped retries, a little shorter so the fault run's waits stay small.
        "SOLUSIO_RETRY_MAX_ATTEMPTS": "3",
        "SOLUSIO_RETRY_BASE_DELAY": "0.1",
        "SOLUSIO_RETRY_MAX_DELAY": "2",
        "SOLUSIO_SYNC_RETRY_BASE": "1",
        "SOLUSIO_SYNC_RETRY_MAX": "5",
        "SOLUSIO_SYNC_SWEEP_AFTER": "30",
        "LOG_LEVEL": "ERROR",
    }
    os.environ.update(env)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis

    wait_for(lambda: redis.Redis.from_url(redis_url).ping(), 10, "redis-server")

    results = {}
    plain = one_run("no faults", args, procs, env, fault_rate=0.0)
    results["no_faults"] = plain
    if not args.skip_faults:
        faulty = one_run(
            f"{args.fault_rate:.0%} faults", args, procs, env, fault_rate=args.fault_rate
        )
        results["faults"] = faulty
    print()
    print(json.dumps(results, indent=2))
    ok = all(
        r["duplicates"] == 0 and r["lost"] == 0 and r["undelivered"] == 0 for r in results.values()
    )
    verdict = [
        f"users/s {plain['users_per_s']:.0f} (target >= {TARGET_USERS_PER_S:.0f}): "
        f"{'met' if plain['users_per_s'] >= TARGET_USERS_PER_S else 'NOT met'}"
    ]
    if "faults" in results:
        factor = results["faults"]["seconds"] / plain["seconds"]
        verdict.append(
            f"faults converged in {factor:.2f}x the fault-free time (target <= "
            f"{TARGET_FAULT_FACTOR:.0f}x): "
            f"{'met' if factor <= TARGET_FAULT_FACTOR else 'NOT met'}"
        )
    for line in verdict:
        print(line)
    return 0 if ok else 1


def one_run(
    label: str,
    args: argparse.Namespace,
    procs: Processes,
    env: dict[str, str],
    *,
    fault_rate: float,
) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection, transaction

    from pricing.models import Currency
    from solusio.client import SolusIOClient
    from solusio.testing import SimulatorControl
    from users import services, sync
    from users.models import SyncRecord, SyncRecordState

    print(
        f"--- {label}: {args.customers} customers, {args.workers} workers x "
        f"{args.concurrency} threads",
        flush=True,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE users_customer, users_syncrecord, users_solusioaccount, "
            "users_loginaudit RESTART IDENTITY CASCADE"
        )
    import redis

    redis.Redis.from_url(env["REDIS_URL"]).flushdb()  # our private server only

    sim, api_url = procs.simulator(SIM_TOKEN, "--seed-users", "0")
    root = api_url.rsplit("/api/v1", 1)[0]
    control = SimulatorControl(root)
    settings.SOLUSIO_API_URL = env["SOLUSIO_API_URL"] = api_url
    settings.SOLUSIO_API_TOKEN = env["SOLUSIO_API_TOKEN"] = SIM_TOKEN
    settings.SOLUSIO_SYNC_QUEUE = env["SOLUSIO_SYNC_QUEUE"]

    usd, _ = Currency.objects.get_or_create(code="USD", defaults={"token_price": "0.001"})
    started = time.monotonic()
    batch = 200
    for first in range(0, args.customers, batch):
        # One transaction per batch: the customers and their outbox records commit
        # together, and their delivery tasks are sent on commit.
        with transaction.atomic():
            for i in range(first, min(first + batch, args.customers)):
                services.create_customer(email=f"bench{i}@example.com", currency=usd)
    created_s = time.monotonic() - started
    print(
        f"created {args.customers} customers in {created_s:.1f} s "
        f"({args.customers / created_s:.0f}/s), queue and outbox loaded",
        flush=True,
    )

    if fault_rate:
        kinds = ("error", "rate_limit", "drop")
        control.set_faults(
            rates={k: fault_rate / len(kinds) for k in kinds}, retry_after=1, error_status=500
        )

    client = SolusIOClient(api_url, SIM_TOKEN, verify_tls=False)

    poller = requests.Session()
    poller.headers.update({"Authorization": f"Bearer {SIM_TOKEN}"})

    def solusio_total() -> int:
        response = poller.get(f"{api_url}/users", params={"per_page": 1}, timeout=10)
        response.raise_for_status()
        return int(response.json()["meta"]["total"])

    def total_tolerant() -> int | None:
        try:
            return solusio_total()
        except Exception:  # the fault run also hits our own polling
            return None

    started = time.monotonic()
    workers = [
        procs.start(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bridge",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(args.concurrency),
                "-Q",
                env["SOLUSIO_SYNC_QUEUE"],
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "error",
                "-n",
                f"bench{n}@%h",
            ],
            env=env,
        )
        for n in range(args.workers)
    ]
    last_sweep = started
    last_print = started
    count = 0
    while True:
        now = time.monotonic()
        if now - started > args.timeout:
            print("TIMEOUT", flush=True)
            break
        total = total_tolerant()
        if total is not None:
            count = total
            if count >= args.customers:
                break
        if now - last_sweep >= args.sweep_every:
            sync.sweep()  # what beat does every minute
            last_sweep = now
        if now - last_print >= 5:
            print(f"  {now - started:6.1f} s: {count} users in SolusIO", flush=True)
            last_print = now
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    # Wait for the outbox to settle too (a record done after its user exists).
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and SyncRecord.objects.exclude(state=SyncRecordState.DONE).exists()
    ):
        time.sleep(0.2)
    if fault_rate:
        control.clear_faults()
    for worker in workers:
        procs.stop(worker)

    per_billing: dict[int, int] = {}
    for user in client.iter_users():
        if user.billing_user_id is not None:
            per_billing[user.billing_user_id] = per_billing.get(user.billing_user_id, 0) + 1
    from users.models import Customer

    ids = set(Customer.objects.values_list("pk", flat=True))
    duplicates = sum(n - 1 for n in per_billing.values() if n > 1)
    lost = len(ids - set(per_billing))
    undelivered = SyncRecord.objects.exclude(state=SyncRecordState.DONE).count()
    parked = SyncRecord.objects.filter(state=SyncRecordState.PARKED).count()
    calls = control.calls()
    faults = sum(1 for c in calls if c["fault"])
    client.close()
    procs.stop(sim)
    result = {
        "customers": args.customers,
        "seconds": round(elapsed, 2),
        "users_per_s": round(count / elapsed, 1),
        "duplicates": duplicates,
        "lost": lost,
        "undelivered": undelivered,
        "parked": parked,
        "solusio_calls": len(calls),
        "faulted_calls": faults,
        "create_seconds": round(created_s, 2),
    }
    print(
        f"{label}: {count} users in {elapsed:.1f} s = {result['users_per_s']} users/s; "
        f"duplicates {duplicates}, lost {lost}, undelivered {undelivered}, "
        f"{faults} of {len(calls)} calls faulted",
        flush=True,
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
