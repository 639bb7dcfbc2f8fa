"""Command line of the simulator, shared by `python -m solusio.simulator` and
`manage.py run_solusio_simulator`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from solusio.simulator.faults import KINDS, FaultConfig
from solusio.simulator.server import DEFAULT_TOKEN, Simulator, serve
from solusio.simulator.state import SeedConfig, parse_instant

DEFAULT_RANDOM_KINDS = "error,rate_limit"


def add_arguments(parser: argparse.ArgumentParser, *, default_token: str = DEFAULT_TOKEN) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    parser.add_argument("--token", default=default_token, help="the Bearer token to accept")
    parser.add_argument("--seed", type=int, default=1, help="seed of users, servers, usage")
    parser.add_argument("--seed-users", type=int, default=10, help="users to seed")
    parser.add_argument(
        "--seed-servers", type=int, default=None, help="server slots (default: 2 per user)"
    )
    parser.add_argument(
        "--seed-customers",
        default=None,
        metavar="FILE",
        help="a billing-data JSON file (the import format): its customers become the first "
        "seeded users (their e-mail, billing_user_id = their id), owning servers and usage",
    )
    parser.add_argument("--now", default=None, help="fixed 'now' (ISO 8601); default: clock")
    parser.add_argument(
        "--tokens-mismatch-rate",
        type=float,
        default=0.0,
        help="share of usage rows whose reported tokens are off by one",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of API calls that fail, spread evenly over --fault-kinds",
    )
    parser.add_argument(
        "--fault-kinds",
        default=DEFAULT_RANDOM_KINDS,
        help=f"comma-separated kinds for --fault-rate, of: {','.join(KINDS)}",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="rate of one fault kind (repeatable), e.g. --fault drop=0.01",
    )
    parser.add_argument("--error-status", type=int, default=500)
    parser.add_argument("--retry-after", type=int, default=1, help="seconds, for 429s")
    parser.add_argument("--slow-delay", type=float, default=2.0, help="seconds, for slow")
    parser.add_argument("--fault-seed", type=int, default=0)


def build_simulator(options: dict[str, Any]) -> Simulator:
    now = None
    if options.get("now"):
        errors: dict[str, list[str]] = {}
        now = parse_instant(options["now"], "now", errors)
        if errors:
            raise SystemExit(f"--now: {errors['now'][0]}")
    rates: dict[str, float] = {}
    if options["fault_rate"]:
        kinds = [k.strip() for k in options["fault_kinds"].split(",") if k.strip()]
        for kind in kinds:
            rates[kind] = options["fault_rate"] / len(kinds)
    for item in options["fault"]:
        kind, _, rate = item.partition("=")
        try:
            rates[kind.strip()] = float(rate)
        except ValueError:
            raise SystemExit(f"--fault {item!r}: expected KIND=RATE") from None
    named = customers_from(options["seed_customers"]) if options.get("seed_customers") else ()
    try:
        faults = FaultConfig(
            rates=rates,
            error_status=options["error_status"],
            retry_after=options["retry_after"],
            slow_delay=options["slow_delay"],
            seed=options["fault_seed"],
        )
        return Simulator(
            token=options["token"],
            seed=SeedConfig(
                seed=options["seed"],
                users=options["seed_users"],
                servers=options["seed_servers"],
                now=now,
                tokens_mismatch_rate=options["tokens_mismatch_rate"],
                named_users=named,
            ),
            faults=faults,
        )
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def customers_from(path: str) -> tuple[tuple[int, str], ...]:
    """(id, e-mail) of the customers in a billing-data file, in the file's order."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        rows = data.get("customers", []) if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise ValueError("no list of customers")
        return tuple((int(row["id"]), str(row["email"])) for row in rows)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--seed-customers {path}: {exc}") from None


def run(options: dict[str, Any], out: Any = sys.stdout) -> None:
    sim = build_simulator(options)
    httpd = serve(sim, options["host"], options["port"])
    host, port = httpd.host, httpd.server_address[1]
    out.write(
        f"SolusIO simulator on http://{host}:{port}/api/v1 "
        f"(token {sim.token!r}, seed {options['seed']}, {sim.state.config.users} users)\n"
        f"  SOLUSIO_API_URL=http://{host}:{port}/api/v1 SOLUSIO_API_TOKEN={sim.token}\n"
    )
    out.flush()
    # SIGTERM (honcho, docker stop) ends the process as cleanly as Ctrl-C does.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m solusio.simulator", description=__doc__)
    add_arguments(parser)
    run(vars(parser.parse_args(argv)))
