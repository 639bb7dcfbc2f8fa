#!/usr/bin/env python
"""Benchmark observed metering: polls of `/servers` at scale, and rows per change.

    .venv/bin/python bench/observe.py [--customers 20000] [--servers 100000] [--polls 10]
                                      [--change 0.01] [--interval 300]

1. Creates the PostgreSQL database `bench_observe` (or $BENCH_OBSERVE_DB), migrates it and
   loads the customers as bench/invoicing.py does.
2. Starts the simulator (its own process) with --servers server slots and a fixed clock.
3. The first poll, in a child process: wall time, peak RSS, servers seen, rows stored.
4. --polls more polls, each in a child process: the simulator's clock moves on by
   --interval seconds and --change of the servers (picked at random from the open
   intervals) get their paid backups switched through the simulator's control API
   (`POST /_sim/servers/change`) before the poll. Prints the rows stored after each poll:
   they grow with the changes (and the simulator's own churn), not with the polls.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("BENCH_INVOICING_DB", os.environ.get("BENCH_OBSERVE_DB", "bench_observe"))

from bench.invoicing import (  # noqa: E402
    TOKEN,
    log,
    prepare_database,
    setup_django,
    start_simulator,
)

START = datetime(2026, 11, 15, tzinfo=UTC)


def stage(args: argparse.Namespace) -> dict[str, object]:
    """One poll, in this (child) process: change servers first when asked."""
    setup_django(args.database_url)
    import requests

    from solusio.client import SolusIOClient
    from usage import observe
    from usage.models import ObservedInterval

    root = args.url.rsplit("/api/v1", 1)[0]
    when = START.timestamp() + args.poll * args.interval
    http = requests.Session()
    http.post(f"{root}/_sim/clock", json={"now": int(when)}, timeout=60).raise_for_status()
    changed = 0
    if args.change > 0:
        open_rows = list(
            ObservedInterval.objects.filter(ended_at__isnull=True).values_list(
                "server_id", "backups_enabled"
            )
        )
        rng = random.Random(args.poll)
        picked = rng.sample(open_rows, max(1, int(len(open_rows) * args.change)))
        for value in (True, False):
            ids = [sid for sid, backups in picked if bool(backups) != value]
            if ids:
                http.post(
                    f"{root}/_sim/servers/change", json={"ids": ids, "backups": value}, timeout=60
                ).raise_for_status()
        changed = len(picked)
    client = SolusIOClient(args.url, TOKEN, verify_tls=False, per_page=100)
    started = time.perf_counter()
    summary = observe.poll_servers(client=client, now=datetime.fromtimestamp(when, UTC))
    seconds = time.perf_counter() - started
    return {
        "poll": args.poll,
        "changed": changed,
        "seconds": seconds,
        "servers": summary.servers,
        "opened": summary.opened,
        "ended": summary.ended,
        "rows": ObservedInterval.objects.count(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_stage(args: argparse.Namespace, poll: int, change: float, url: str) -> dict[str, object]:
    command = [
        sys.executable,
        __file__,
        "--stage",
        "--poll",
        str(poll),
        "--change",
        str(change),
        "--interval",
        str(args.interval),
        "--url",
        url,
        "--database-url",
        args.database_url,
    ]
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--servers", type=int, default=100_000)
    parser.add_argument("--polls", type=int, default=10, help="polls after the first")
    parser.add_argument("--change", type=float, default=0.01, help="share changed per poll")
    parser.add_argument("--interval", type=int, default=300, help="seconds between polls")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--stage", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--poll", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args)))
        return 0

    prepare_database(args.database_url, args.customers)
    simulator, url = start_simulator(args.customers, args.servers, START.isoformat())
    results = []
    try:
        for poll in range(args.polls + 1):
            result = run_stage(args, poll, args.change if poll else 0.0, url)
            log(json.dumps(result))
            results.append(result)
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    load = os.getloadavg()
    print(f"server slots {args.servers:,}, customers {args.customers:,}, load {load[0]:.2f}")
    for r in results:
        print(
            f"poll {r['poll']:>2}: {r['seconds']:.1f} s, {r['servers']:,} servers, "
            f"{r['changed']:,} changed, {r['opened']:,} opened, {r['ended']:,} ended, "
            f"{r['rows']:,} rows stored, peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
