#!/usr/bin/env python
"""Benchmark the cycle close against its floor.

    .venv/bin/python bench/invoicing.py [--customers 20000] [--servers 100000] [--month 2026-10]
                                        [--source usage_api|observed] [--workers N]

What it does, in order:

1. Creates the PostgreSQL database `bench_invoicing` (or $BENCH_INVOICING_DB; dropped and
   re-created), migrates it and loads --customers customers: USD and EUR, a discount on
   every tenth, compound taxes for GB. Every hundredth SolusIO user has no customer, so
   ~1 % of usage is orphan.
2. Starts the simulator as its own process (`python -m solusio.simulator`) with --customers
   users and --servers server slots and a fixed clock after the month, and asks for the
   month's first page once (it builds the simulator's page index, which both runs share).
3. The floor, in a child process: fetch every page of the month with the same client and
   page size, and bulk-insert the raw rows (COPY in batches of the same size).
4. The close, in another child process: `usage.close.close_cycle` with auto-issue on —
   pull, upsert, build every invoice from the pure rules, number and issue them (recording
   each invoice's e-mail and queuing its delivery on a throwaway embedded broker; nothing is
   sent).
   With `--workers N` the close runs as the Celery workflow (usage/workflow.py) on N
   worker processes (solo pool, one process each) over a private redis-server: the child
   submits it and follows it to the end; the pull, the shards and the issuing step run in
   the workers.
5. Prints for each: wall time, rows, invoices, lines, lines/s, peak RSS of the child (and,
   with --workers, of every worker: VmHWM from /proc), SQL queries (and per invoice for the
   close, the submitting process's only with --workers); then the ratio close/floor and the
   verdict against the targets (>= 10,000 lines/s, ratio <= 2.0, peak RSS <= 300 MB for every
   process).

Each stage runs in a fresh process so its peak RSS is its own.

With `--source observed` the close bills observed usage (USAGE_SOURCE=observed): before
the stages, the month's observed intervals are loaded (one per simulator usage segment,
with its additional IP, and a complete poll after the month, as the polls would have
left them). The floor is then the I/O of that close: read every interval of the month
in one query and COPY the usage rows the close stores (one per interval, one more per
additional IP, one more with backups on), a draft per customer and a line per row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Its own database (BENCH_INVOICING_DB), so benches of several checkouts can share a server.
DB_NAME = os.environ.get("BENCH_INVOICING_DB", "bench_invoicing")
TOKEN = "bench-token"
TARGET_LINES_PER_S = 10_000  # issue 13 (was 2,000)
TARGET_RATIO = 2.0
TARGET_RSS_MB = 300


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def server_url(database_url: str) -> str:
    return database_url.rsplit("/", 1)[0]


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = f"{server_url(database_url)}/{DB_NAME}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridge.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Production mode (DEBUG off) refuses to start without these.
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("PRICING_API_TOKEN", "bench-only-token")
    import django

    django.setup()


def create_database(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{server_url(database_url)}/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))


def seed(customers: int) -> None:
    from decimal import Decimal

    from django.core.management import call_command

    from pricing.models import Currency, Discount, PricingSettings, TaxRule
    from users.models import Customer

    call_command("migrate", verbosity=0, interactive=False)
    usd = Currency.objects.create(code="USD", token_price=Decimal("0.001"), display_prefix="$")
    eur = Currency.objects.create(
        code="EUR",
        token_price=Decimal("0.00091"),
        display_suffix=" €",
        thousands_separator=".",
        decimals_separator=",",
    )
    loyal = Discount.objects.create(name="Loyal", multiplier=Decimal("0.95"))
    TaxRule.objects.create(label="VAT", rate=Decimal(20), country="GB", order=1)
    TaxRule.objects.create(label="City", rate=Decimal(2), country="GB", region="London", order=2)
    PricingSettings.objects.update_or_create(pk=1, defaults={"taxes_compound": True})
    rows = [
        Customer(
            id=i,
            email=f"customer{i}@example.test",
            currency=eur if i % 3 == 0 else usd,
            country="GB" if i % 4 == 0 else "US",
            region="London" if i % 8 == 0 else "",
            billing_exempt=i % 97 == 0,
        )
        for i in range(1, customers + 1)
        if i % 100 != 0  # every hundredth SolusIO user is unknown here: orphan usage
    ]
    Customer.objects.bulk_create(rows, batch_size=5000)
    through = Customer.discounts.through
    through.objects.bulk_create(
        [through(customer_id=c.id, discount_id=loyal.pk) for c in rows if c.id % 10 == 0],
        batch_size=5000,
    )
    from bridge.db import advance_id_sequence

    advance_id_sequence(model=Customer, past_id=customers)


def prepare_database(url: str, customers: int) -> None:
    """A new bench database, migrated, with `customers` customers."""
    started = time.perf_counter()
    create_database(url)
    setup_django(url)
    seed(customers)
    log(f"database seeded in {time.perf_counter() - started:.1f}s")


def start_simulator(users: int, servers: int, now: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "solusio.simulator",
            "--port",
            "0",
            "--seed-users",
            str(users),
            "--seed-servers",
            str(servers),
            "--token",
            TOKEN,
            "--now",
            now,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line.split(" on ", 1)[1].split()[0]


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        self.count += 1
        return execute(sql, params, many, context)


def stage(args: argparse.Namespace) -> dict[str, object]:
    """One measured stage, in this (child) process."""
    setup_django(args.database_url)
    from django.db import connection, transaction

    from solusio.client import SolusIOClient
    from usage import close, db, pull
    from usage.models import InvoiceLine, UsageRecord
    from usage.rules import parse_period

    period = parse_period(args.month, "UTC")
    client = SolusIOClient(args.url, TOKEN, verify_tls=False, per_page=100)
    counter = QueryCounter()
    result: dict[str, object] = {"stage": args.stage}
    with connection.execute_wrapper(counter):
        started = time.perf_counter()
        if args.stage == "floor" and args.source == "observed":
            rows = observed_floor(period)
            result.update(rows=rows, invoices=0, lines=rows)
        elif args.stage == "floor":
            # The same pages and client, the same rows as COPY writes them: no customer
            # lookup, no upsert, no invoices.
            rows = 0
            fields = [f for f in pull.USAGE_FIELDS if f != "customer"]
            batch: list[tuple[object, ...]] = []

            def flush() -> None:
                with transaction.atomic():
                    db.insert(UsageRecord, fields, batch)

            for r in client.iter_usage(period.start, period.end):
                batch.append(
                    (
                        period.month,
                        r.server.id,
                        str(r.item),
                        r.started_at,
                        r.ended_at,
                        r.user.billing_user_id,
                        r.user.id,
                        r.server.uuid,
                        r.server.name,
                        r.plan.id,
                        r.plan.name,
                        r.hours,
                        r.tph,
                        r.tpm,
                        r.tokens,
                        r.backup_price,
                        0,
                    )
                )
                if len(batch) >= pull.PULL_BATCH:
                    flush()
                    rows += len(batch)
                    batch.clear()
            flush()
            rows += len(batch)
            result.update(rows=rows, invoices=0, lines=rows)
        else:
            if args.workers:
                summary = close_on_workers(period)
            else:
                summary = close.close_cycle(
                    period=period,
                    client=client,
                    auto_issue=True,
                    now=datetime(2030, 1, 1, tzinfo=UTC),
                )
            lines = InvoiceLine.objects.count()
            result.update(
                rows=summary.rows,
                invoices=summary.created,
                lines=lines,
                orphans=summary.orphans,
                issued=summary.issued,
                held=summary.held,
                stages=summary.seconds,
            )
        result["seconds"] = time.perf_counter() - started
    result["queries"] = counter.count
    # This process's own high-water mark: getrusage's ru_maxrss carries the parent's over
    # the fork and exec (the parent seeded the database: 168 MB at 50,000 customers).
    result["peak_rss_mb"] = peak_rss_mb(os.getpid())
    return result


def close_on_workers(period: Any) -> Any:
    """Submit the close to the workers (the close queue of this bench) and follow it."""
    from usage import workflow
    from usage.models import CloseRunState

    run = workflow.submit(period=period, auto_issue=True)
    run = workflow.follow(run.pk, every=0.2, on_change=lambda run: None)
    if run.state != CloseRunState.DONE:
        raise SystemExit(f"close run #{run.pk} {run.state}: {run.error}")
    return workflow.summary_of(run, figures=False)


# --- Celery workers (--workers N), shared with bench/drills.py's close_worker_kill -------


def worker_env(database_url: str, redis_url: str, api_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker (and of the process that submits to it): this bench's
    database, a private broker, the simulator, its own close queue."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridge.settings",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret-key"),
        "PRICING_API_TOKEN": os.environ.get("PRICING_API_TOKEN", "bench-only-token"),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SOLUSIO_API_URL": api_url,
        "SOLUSIO_API_TOKEN": TOKEN,
        "SOLUSIO_VERIFY_TLS": "0",
        "CLOSE_QUEUE": "bench-close",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


class Workers:
    """N Celery worker processes (solo pool: one process each, so each one's peak RSS is
    its own) on the close queue, logging to `log_dir`."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self, count: int = 1) -> list[subprocess.Popen[bytes]]:
        new = []
        for _ in range(count):
            name = f"close{self.started}"
            self.started += 1
            log = self.log_dir / f"{name}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [
                        sys.executable, "-m", "celery", "-A", "bridge", "worker", "--pool", "solo",
                        "-Q", self.env["CLOSE_QUEUE"], "-n", f"{name}@%h", "--without-gossip",
                        "--without-mingle", "--without-heartbeat", "-l", "info",
                    ],
                    cwd=ROOT,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            proc.log = log  # type: ignore[attr-defined]
            new.append(proc)
        self.procs.extend(new)
        for proc in new:  # ready to take tasks: the measured close starts with them up
            deadline = time.monotonic() + 120
            while b" ready." not in proc.log.read_bytes():  # type: ignore[attr-defined]
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = proc.log.read_text(errors="replace")[-2000:]  # type: ignore[attr-defined]
                    raise SystemExit(f"worker did not start:\n{text}")
                time.sleep(0.2)
        return new

    def peak_rss_mb(self) -> list[float]:
        """Each running worker's peak resident set (VmHWM), in MB."""
        return [peak_rss_mb(p.pid) for p in self.procs if p.poll() is None]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def observed_floor(period: Any) -> int:
    """The I/O an observed close cannot avoid, without its logic: read the month's
    intervals (binary, one query), COPY one usage row for each, one more per additional
    IP and one more with backups on (the rows the close stores), then
    one draft invoice per customer and one line per row (as the close writes them: COPY, ids
    read back)."""
    from datetime import timedelta
    from decimal import Decimal

    import psycopg
    from django.db import connection, transaction
    from django.utils import timezone

    from usage import build, db, pull
    from usage.models import Invoice, InvoiceLine, ObservedInterval, UsageRecord

    names = [
        "server_id", "started_at", "ended_at", "customer", "solusio_user_id", "server_uuid",
        "server_name", "plan_id", "plan_name", "tokens_per_hour", "tokens_per_month",
        "backups_enabled", "backup_price", "additional_ips", "ip_tokens_per_hour",
        "ip_tokens_per_month",
    ]  # fmt: skip
    columns = ", ".join(db.column_names(ObservedInterval, names))
    sql = (
        f"SELECT {columns} FROM {ObservedInterval._meta.db_table} "  # noqa: S608
        "WHERE started_at < %s AND (ended_at IS NULL OR ended_at > %s)"
    )
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, [period.end, period.start], binary=True)
        found = cursor.fetchall()
    # A server row per interval, an additional_ip row per additional IP (the close keys
    # the second and later by a microsecond more), and a backup row (R7) with backups on.
    micro = timedelta(microseconds=1)
    values = [
        (period.month, sid, item, start + k * micro, end, cid, uid or 0, uuid, name, pid,
         pname, 1, p_h, p_m, None, price, 0, cid)
        for sid, start, end, cid, uid, uuid, name, pid, pname, tph, tpm, backups, bp, ips,
        ip_h, ip_m in found
        for item, k, p_h, p_m, price in [
            ("server", 0, tph, tpm, None),
            *(("additional_ip", k, ip_h, ip_m, None) for k in range(ips)),
            *([("backup", 0, tph, tpm, bp)] if backups else []),
        ]
    ]  # fmt: skip
    now = timezone.now()
    customers = sorted({row[3] for row in found if row[3] is not None})
    zero = Decimal(0)
    with transaction.atomic():
        db.insert(UsageRecord, list(pull.USAGE_FIELDS), values)
        db.insert(
            Invoice,
            build._INVOICE_FIELDS,
            (
                (cid, period.month, "draft", period.start, period.end, "USD", 0, zero, zero,
                 zero, {}, [], 0, "", "", now)
                for cid in customers
            ),
        )  # fmt: skip
        id_of = dict(Invoice.objects.filter(period=period.month).values_list("customer_id", "id"))
        db.insert(
            InvoiceLine,
            build.LINE_FIELDS,
            (
                (id_of[v[5]], i, v[1], v[7], v[8], v[9], v[10], v[2], v[3], v[4], v[11],
                 v[12], v[13], "hourly", 0, zero, None, False, None)
                for i, v in enumerate(values)
                if v[5] is not None
            ),
        )  # fmt: skip
    return len(values)


def load_observed(url: str, month: str) -> int:
    """The month's observed intervals as complete polls would have stored them: one per
    simulator usage segment (its additional IP on it) and a complete poll after the month."""
    from datetime import timedelta

    from django.db import transaction

    from solusio.client import SolusIOClient
    from usage import db, observe
    from usage.models import ObservationPoll, ObservedInterval
    from usage.rules import parse_period
    from users.models import Customer

    period = parse_period(month, "UTC")
    client = SolusIOClient(url, TOKEN, verify_tls=False, per_page=100)
    known = set(Customer.objects.values_list("id", flat=True))
    intervals: dict[tuple[int, Any], list[Any]] = {}
    for r in client.iter_usage(period.start, period.end):
        key = (r.server.id, r.started_at)
        if str(r.item) == "additional_ip":
            intervals[key][13] = 1  # additional_ips: the segment's server row came first
            continue
        if str(r.item) == "backup":  # backups_enabled, backup_price: as the IP, after it
            intervals[key][11:13] = [True, r.backup_price]
            continue
        cid = r.user.billing_user_id if r.user.billing_user_id in known else None
        intervals[key] = [
            r.server.id, r.server.name, r.plan.name, r.server.uuid, r.user.id, cid, r.plan.id,
            r.plan.tokens_per_hour, r.plan.tokens_per_month, r.plan.ip_tokens_per_hour,
            r.plan.ip_tokens_per_month, False, None, 0, "started", r.started_at, r.ended_at,
        ]  # fmt: skip
    with transaction.atomic():
        db.insert(ObservedInterval, [*observe.INTERVAL_FIELDS, "ended_at"], intervals.values())
        at = period.end + timedelta(hours=1)
        ObservationPoll.objects.create(at=at, completed_at=at, servers=len(intervals))
    return len(intervals)


def run_stage(
    args: argparse.Namespace, name: str, url: str, extra_env: dict[str, str] | None = None
) -> dict[str, object]:
    command = [
        sys.executable,
        __file__,
        "--stage",
        name,
        "--url",
        url,
        "--month",
        args.month,
        "--database-url",
        args.database_url,
        "--source",
        args.source,
    ]
    # The close queues its invoice e-mails on the broker: a throwaway embedded one, so no
    # worker of this checkout (or of a shared Redis) ever sees the bench's messages; with
    # --workers, the workers' private redis-server.
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(extra_env or {})
    if extra_env:
        command += ["--workers", str(args.workers)]
    env["USAGE_SOURCE"] = args.source
    with tempfile.TemporaryDirectory(prefix="bench-invoicing-") as var_dir:
        env["BRIDGE_VAR_DIR"] = var_dir
        out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def close_with_workers(args: argparse.Namespace, url: str) -> tuple[dict[str, object], list[float]]:
    """The close stage with --workers worker processes on a private redis-server: the stage
    process submits the close and follows it; the workers' peak RSS is read before they
    stop."""
    sys.path.insert(0, str(ROOT))
    from bench._common import Processes, free_port

    procs = Processes()
    port = free_port()
    database_url = f"{server_url(args.database_url)}/{DB_NAME}"
    env = worker_env(database_url, f"redis://127.0.0.1:{port}/0", url, USAGE_SOURCE=args.source)
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as var_dir:
        env["BRIDGE_VAR_DIR"] = var_dir
        workers = Workers(env, Path(var_dir))
        try:
            procs.redis_server(port)
            workers.start(args.workers)
            close = run_stage(
                args,
                "close",
                url,
                {k: env[k] for k in ("REDIS_URL", "CLOSE_QUEUE", "BRIDGE_VAR_DIR")},
            )
            return close, workers.peak_rss_mb()
        finally:
            workers.stop()
            procs.stop_all()


def truncate_usage(database_url: str) -> None:
    import psycopg

    with psycopg.connect(f"{server_url(database_url)}/{DB_NAME}", autocommit=True) as conn:
        conn.execute(
            "TRUNCATE usage_usagerecord, usage_invoiceline, usage_invoice, usage_usagepull, "
            "usage_closerun, usage_closeshard CASCADE"
        )
        conn.execute("UPDATE usage_invoicecounter SET last = 0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--servers", type=int, default=100_000)
    parser.add_argument("--month", default="2026-10")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--source", choices=["usage_api", "observed"], default="usage_api")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="close through the Celery workflow on this many worker processes (0: inline)",
    )
    parser.add_argument("--stage", choices=["floor", "close"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args)))
        return 0

    prepare_database(args.database_url, args.customers)
    year, month = (int(x) for x in args.month.split("-"))
    now = f"{year + (month == 12):04d}-{month % 12 + 1:02d}-15T00:00:00+00:00"
    simulator, url = start_simulator(args.customers, args.servers, now)
    try:
        import requests

        t = time.perf_counter()
        month_start = f"{year:04d}-{month:02d}-01T00:00:00+00:00"
        month_end = f"{year + (month == 12):04d}-{month % 12 + 1:02d}-01T00:00:00+00:00"
        first = requests.get(
            f"{url}/usage",
            params={
                "filter[date_from]": month_start,
                "filter[date_to]": month_end,
                "per_page": 100,
            },
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=600,
        ).json()
        log(
            f"simulator: {first['meta']['total']:,} usage rows in {args.month}; "
            f"page index built in {time.perf_counter() - t:.1f}s"
        )
        if args.source == "observed":
            t = time.perf_counter()
            loaded = load_observed(url, args.month)
            log(f"observed intervals loaded: {loaded:,} in {time.perf_counter() - t:.1f}s")
        floor = run_stage(args, "floor", url)
        truncate_usage(args.database_url)
        if args.workers:
            close, workers_rss = close_with_workers(args, url)
        else:
            close, workers_rss = run_stage(args, "close", url), []
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)

    lines_per_s = close["lines"] / close["seconds"]  # type: ignore[operator]
    ratio = close["seconds"] / floor["seconds"]  # type: ignore[operator]
    per_invoice = close["queries"] / max(1, close["invoices"])  # type: ignore[operator]
    print(
        f"customers {args.customers:,}, server slots {args.servers:,}, month {args.month}, "
        f"source {args.source}, load average {os.getloadavg()[0]:.2f}"
    )
    for r in (floor, close):
        print(
            f"{r['stage']:>5}: {r['seconds']:.2f} s, {r['rows']:,} rows, "
            f"{r['invoices']:,} invoices, {r['lines']:,} lines, "
            f"{r['lines'] / r['seconds']:,.0f} lines/s, peak RSS {r['peak_rss_mb']:.0f} MB, "  # type: ignore[operator]
            + f"{r['queries']:,} SQL statements (COPY data not counted"
            + ("; the workers' not)" if r is close and workers_rss else ")")
        )
    if workers_rss:
        print(
            f"close on {args.workers} worker processes: peak RSS "
            + ", ".join(f"{mb:.0f}" for mb in workers_rss)
            + " MB (the submitting process: "
            + f"{close['peak_rss_mb']:.0f} MB)"
        )
    print(
        f"close: {close.get('orphans', 0):,} orphan rows, {close.get('issued', 0):,} issued, "
        f"{close.get('held', 0):,} held; {per_invoice:.3f} SQL queries per invoice"
    )
    stages = close.get("stages", {})
    print("close stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))  # type: ignore[union-attr]
    print(f"ratio close/floor: {ratio:.2f}")
    ok = (
        lines_per_s >= TARGET_LINES_PER_S
        and ratio <= TARGET_RATIO
        and close["peak_rss_mb"] <= TARGET_RSS_MB  # type: ignore[operator]
        and all(mb <= TARGET_RSS_MB for mb in workers_rss)
    )
    print(
        f"targets: >= {TARGET_LINES_PER_S} lines/s ({lines_per_s:,.0f}), ratio <= "
        f"{TARGET_RATIO} ({ratio:.2f}), peak RSS <= {TARGET_RSS_MB} MB "
        f"({max([close['peak_rss_mb'], *workers_rss]):.0f}): {'MET' if ok else 'NOT MET'}"  # type: ignore[type-var]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
