"""How fast the simulator serves usage pages: `python -m solusio.simulator.bench`.

Starts `python -m solusio.simulator` as its own process (as a benchmark would use it), then
times GET /usage pages over one keep-alive connection: the first page (which builds the
period's page index) and then pages spread over the whole month.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m solusio.simulator.bench")
    parser.add_argument("--servers", type=int, default=100_000, help="server slots")
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--pages", type=int, default=300, help="pages to time")
    parser.add_argument("--per-page", type=int, default=100)
    parser.add_argument("--month", default="2025-01", help="YYYY-MM")
    args = parser.parse_args()

    year, month = (int(x) for x in args.month.split("-"))
    date_from = f"{year:04d}-{month:02d}-01T00:00:00+00:00"
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    date_to = f"{ny:04d}-{nm:02d}-01T00:00:00+00:00"

    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
        [
            sys.executable,
            "-m",
            "solusio.simulator",
            "--port",
            "0",
            "--seed-users",
            str(args.users),
            "--seed-servers",
            str(args.servers),
            "--token",
            "bench",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        print(
            f"simulator up in {time.perf_counter() - started:.2f} s: {args.users} users, "
            f"{args.servers} server slots"
        )
        session = requests.Session()
        session.headers["Authorization"] = "Bearer bench"
        params = {"filter[date_from]": date_from, "filter[date_to]": date_to}

        def fetch(page: int) -> tuple[float, dict]:
            t = time.perf_counter()
            response = session.get(
                url + "/usage", params={**params, "page": page, "per_page": args.per_page}
            )
            body = response.json()
            elapsed = (time.perf_counter() - t) * 1000
            assert response.status_code == 200, body
            return elapsed, body

        first_ms, first = fetch(1)
        meta = first["meta"]
        print(
            f"{args.month}: {meta['total']} usage rows, {meta['last_page']} pages of "
            f"{meta['per_page']}"
        )
        print(f"first page (builds the period's index): {first_ms:.1f} ms")
        rng = random.Random(1)
        pages = [rng.randint(1, meta["last_page"]) for _ in range(args.pages)]
        timings = []
        for page in pages:
            elapsed, body = fetch(page)
            assert len(body["data"]) == args.per_page or page == meta["last_page"]
            timings.append(elapsed)
        timings.sort()
        p95 = timings[int(len(timings) * 0.95) - 1]
        print(
            f"{len(timings)} random {args.per_page}-row pages, round trip incl. JSON decode: "
            f"median {statistics.median(timings):.2f} ms, p95 {p95:.2f} ms, "
            f"max {timings[-1]:.2f} ms"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
