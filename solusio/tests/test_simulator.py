"""The simulator itself: SolusIO's behaviour, seeded usage that shows every billing rule,
the control API, and the two ways to start it."""

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from solusio.client import SolusIOClient
from solusio.testing import SimulatorInfo, fast_client, running_simulator
from solusio.usage_schema import UsageItem, UsageRow

ROOT = Path(__file__).resolve().parents[2]
JAN = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))


def api(sim: SimulatorInfo, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {sim.token}", **kwargs.pop("headers", {})}
    return requests.request(method, sim.url + path, headers=headers, timeout=5, **kwargs)


def rule(row: UsageRow) -> str:
    """Which DESIGN §5 rule prices the row's runtime (computed here independently of the
    bridge); a backup row is R7 on top of it."""
    tph, tpm = row.tph, row.tpm
    assert row.hours is not None  # the simulator always says
    if tph and tpm:
        return "capped" if row.hours * tph > tpm else "hourly"
    if tph:
        return "hourly-only"
    return "fixed" if tpm else "free"


# --- SolusIO behaviour --------------------------------------------------------------------


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer wrong", "Basic c2ltdWxhdG9y"])
def test_requests_without_the_bearer_token_are_401(sim: SimulatorInfo, header: str) -> None:
    response = api(sim, "GET", "/users", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthenticated."}


def test_unknown_routes_and_methods(sim: SimulatorInfo) -> None:
    assert api(sim, "GET", "/nothing").status_code == 404
    assert api(sim, "DELETE", "/plans").status_code == 405
    assert api(sim, "POST", "/users", data="{not json").status_code == 400


def test_create_answers_201_delete_204_and_both_use_the_envelope(sim: SimulatorInfo) -> None:
    created = api(sim, "POST", "/users", json={"email": "e@example.test", "password": "12345678"})
    assert created.status_code == 201
    user = created.json()["data"]
    assert (user["status"], user["billing_user_id"]) == ("active", None)
    deleted = api(sim, "DELETE", f"/users/{user['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert api(sim, "GET", f"/users/{user['id']}").status_code == 404


def test_billing_user_id_filter_is_ignored_like_an_unknown_laravel_filter(
    sim: SimulatorInfo,
) -> None:
    # DESIGN §4 assumes SolusIO has no filter[billing_user_id]: using it returns everyone.
    page = api(sim, "GET", "/users", params={"filter[billing_user_id]": 3}).json()
    assert page["meta"]["total"] == 10


def test_pagination_links_keep_the_filters(sim: SimulatorInfo) -> None:
    page = api(sim, "GET", "/users", params={"filter[search]": "customer", "per_page": 4}).json()
    assert page["meta"] == {
        "current_page": 1,
        "from": 1,
        "last_page": 3,
        "path": sim.url + "/users",
        "per_page": 4,
        "to": 4,
        "total": 10,
    }
    assert "filter%5Bsearch%5D=customer" in page["links"]["next"]
    assert page["links"]["next"].endswith("page=2")
    assert page["links"]["prev"] is None


def test_usage_period_is_validated(sim: SimulatorInfo) -> None:
    missing = api(sim, "GET", "/usage")
    assert missing.status_code == 422
    assert set(missing.json()["errors"]) == {"filter.date_from", "filter.date_to"}
    backwards = api(
        sim,
        "GET",
        "/usage",
        params={"filter[date_from]": "2025-02-01", "filter[date_to]": "2025-01-01"},
    )
    assert backwards.status_code == 422


# --- Seeded usage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)),  # 744 h
        (datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC)),  # 672 h
        (datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC)),  # 720 h
    ],
)
def test_every_billing_rule_shows_up_in_every_month(
    client: SolusIOClient, start: datetime, end: datetime
) -> None:
    rows = list(client.iter_usage(start, end))
    rules = Counter(rule(r) for r in rows)
    assert set(rules) == {"hourly", "capped", "hourly-only", "fixed", "free"}, rules
    hours_on_plan_1 = {r.hours for r in rows if r.plan.id == 1 and r.item == UsageItem.SERVER}
    if end - start >= timedelta(hours=700):
        assert 700 in hours_on_plan_1  # the seed's 700 h -> 4900 tokens, hourly
    short = [r for r in rows if r.ended_at and r.ended_at - r.started_at < timedelta(hours=1)]
    assert short
    assert {r.hours for r in short} == {1}  # 5 minutes is 1 hour (R1)
    assert any(
        r.hours == 2 and r.ended_at and r.ended_at - r.started_at == timedelta(seconds=3601)
        for r in rows
    )  # 60 min 1 s is 2 hours (R1)
    plans_per_server = Counter(r.server.id for r in rows if r.item == UsageItem.SERVER)
    assert max(plans_per_server.values()) >= 2  # a server resized mid-month
    assert any(r.item == UsageItem.ADDITIONAL_IP for r in rows)
    assert any(start < r.started_at and r.ended_at and r.ended_at < end for r in rows)
    assert any(r.started_at == start and r.ended_at == end for r in rows)  # the whole month
    assert any(r.tokens is None for r in rows)
    for row in rows:
        assert row.hours is not None
        assert row.hours >= 1
        if row.tokens is not None:
            expected = {
                "capped": row.tpm,
                "hourly": row.hours * row.tph,
                "hourly-only": row.hours * row.tph,
                "fixed": row.tpm,
                "free": 0,
            }[rule(row)]
            if row.item == UsageItem.BACKUP:
                assert row.plan.backup_price is not None
                # R7, half-up: runtime × percent / 100, with integers only.
                expected = (expected * int(row.plan.backup_price) * 2 + 100) // 200
            assert row.tokens == expected


def test_servers_cross_month_boundaries() -> None:
    with running_simulator(users=50) as info, fast_client(info) as client:
        jan = {r.server.id: r for r in client.iter_usage(*JAN)}
        feb = {r.server.id: r for r in client.iter_usage(JAN[1], datetime(2025, 3, 1, tzinfo=UTC))}
    crossing = [sid for sid in jan.keys() & feb.keys() if jan[sid].server.name]
    # Created in January, still there in February, and not a never-deleted server.
    assert any(jan[s].started_at > JAN[0] and feb[s].started_at == JAN[1] for s in crossing)


def test_usage_is_deterministic_per_seed() -> None:
    def month(seed: int) -> list[UsageRow]:
        with running_simulator(seed=seed, users=30) as info, fast_client(info) as client:
            return [r for r in client.iter_usage(*JAN)]

    assert month(5) == month(5)
    assert month(5) != month(6)


def test_usage_follows_plan_price_changes(client: SolusIOClient) -> None:
    client.update_plan_prices(1, tokens_per_hour=8, tokens_per_month=5500)
    rows = [r for r in client.iter_usage(*JAN) if r.plan.id == 1]
    assert {(r.plan.tokens_per_hour, r.plan.tokens_per_month) for r in rows} == {(8, 5500)}


def test_usage_for_a_billing_zone_month(client: SolusIOClient) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start, end = datetime(2025, 3, 1, tzinfo=berlin), datetime(2025, 4, 1, tzinfo=berlin)
    rows = list(client.iter_usage(start, end))
    # The steady showcase server (its backup row covers the same hours).
    whole = [r for r in rows if r.server.id == 1 and r.item == UsageItem.SERVER]
    # March in Berlin: 31 days less the hour lost to summer time.
    assert [(r.started_at, r.ended_at, r.hours) for r in whole] == [(start, end, 743)]


def test_a_running_month_reports_usage_up_to_now() -> None:
    now = datetime(2025, 3, 15, 12, tzinfo=UTC)
    with running_simulator(now=int(now.timestamp())) as info, fast_client(info) as client:
        rows = list(
            client.iter_usage(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
        )
        future = list(
            client.iter_usage(datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC))
        )
    steady = [r for r in rows if r.server.id == 1]
    assert [(r.item, r.hours, r.ended_at) for r in steady] == [
        ("server", 14 * 24 + 12, None),
        ("backup", 14 * 24 + 12, None),  # paid backups on the steady showcase server
    ]
    assert all(r.ended_at is None or r.ended_at <= now for r in rows)
    assert future == []


def test_hand_made_servers_give_exact_usage(client: SolusIOClient, sim: SimulatorInfo) -> None:
    made = sim.control.add_server(
        user_id=3,
        plan_id=1,
        created_at="2025-01-01T00:00:00Z",
        deleted_at="2025-01-30T04:00:00Z",  # 700 h
        additional_ip=True,
    )
    resized = sim.control.add_server(
        user_id=3,
        plan_id=2,
        created_at="2025-01-10T00:00:00Z",
        resizes=[{"at": "2025-01-20T00:30:00Z", "plan_id": 4}],
    )
    rows = [r for r in client.iter_usage(*JAN) if r.server.id in (made["id"], resized["id"])]
    assert [(r.server.id, r.item, r.plan.id, r.hours) for r in rows] == [
        (made["id"], "server", 1, 700),
        (made["id"], "additional_ip", 1, 700),
        (resized["id"], "server", 2, 241),  # 10 days and 30 minutes: 241 started hours
        (resized["id"], "server", 4, 288),  # from 00:30 on the 20th to the end: 287.5 -> 288
    ]
    assert rows[0].user.billing_user_id == 3


def test_usage_bills_backups_from_each_switch_on_to_the_next_switch_off(
    client: SolusIOClient, sim: SimulatorInfo
) -> None:
    made = sim.control.add_server(user_id=3, plan_id=1, created_at="2024-12-01T00:00:00Z")
    whole = [r for r in client.iter_usage(*JAN) if r.server.id == made["id"]]
    for day, on in ((10, True), (20, False), (25, True)):  # as staff switch it in SolusIO
        sim.control.set_clock(int(datetime(2025, 1, day, 6, tzinfo=UTC).timestamp()))
        sim.control.change_servers([made["id"]], backups=on)
    sim.control.set_clock(int(datetime(2025, 3, 1, tzinfo=UTC).timestamp()))
    rows = list(client.iter_usage(*JAN))  # paged: the page index counts the new rows
    assert len(rows) == len({(r.server.id, r.item, r.started_at) for r in rows})
    mine = [(r.item, r.started_at, r.ended_at, r.hours) for r in rows if r.server.id == made["id"]]
    at = [datetime(2025, 1, day, 6, tzinfo=UTC) for day in (10, 20, 25)]
    assert mine == [
        ("server", JAN[0], JAN[1], 744),  # the server's own segment does not split
        ("backup", at[0], at[1], 240),
        ("backup", at[2], JAN[1], 7 * 24 - 6),  # on again to the end of January
    ]
    assert [r.item for r in whole] == ["server"]  # before the switches: no backups


def test_hand_made_server_is_validated(sim: SimulatorInfo) -> None:
    with pytest.raises(AssertionError, match="plan_id"):
        sim.control.add_server(user_id=1, plan_id=99, created_at="2025-01-01")


def test_users_keep_their_servers_and_billing_link_in_usage(
    client: SolusIOClient, sim: SimulatorInfo
) -> None:
    client.update_user(2, billing_user_id=2002)
    rows = [r for r in client.iter_usage(*JAN) if r.user.id == 2]
    assert rows
    assert {r.user.billing_user_id for r in rows} == {2002}


# --- Control API ---------------------------------------------------------------------------


def test_seed_and_reset(client: SolusIOClient, sim: SimulatorInfo) -> None:
    sim.control.seed(seed=3, users=25)
    assert sum(1 for _ in client.iter_users()) == 25
    client.create_user(email="extra@example.test", password="password-1")
    sim.control.fail_next("error", count=5)
    sim.control.reset()
    assert sim.control.calls() == []  # the call log went with the reset
    assert sum(1 for _ in client.iter_users()) == 25
    client.get_user(1)  # the queued faults were cleared by the reset
    assert [c["status"] for c in sim.control.calls()][-1] == 200


def test_fault_settings_are_validated_and_reported(sim: SimulatorInfo) -> None:
    with pytest.raises(AssertionError, match="unknown fault kinds"):
        sim.control.set_faults(rates={"explode": 0.5})
    with pytest.raises(AssertionError, match="sum to at most 1"):
        sim.control.set_faults(rates={"error": 0.7, "drop": 0.7})
    described = sim.control.set_faults(rates={"error": 0.25}, retry_after=3)
    assert (described["rates"], described["retry_after"]) == ({"error": 0.25}, 3)
    sim.control.clear_faults()
    assert sim.control.set_faults()["rates"] == {}


def test_fail_next_matches_method_and_path_glob(client: SolusIOClient, sim: SimulatorInfo) -> None:
    sim.control.fail_next("error", count=1, method="PUT", path="/users/*")
    client.get_user(1)
    client.list_plans()
    assert all(c["fault"] is None for c in sim.control.calls())
    client.set_user_status(1, "locked")
    assert [c["fault"] for c in sim.control.calls(method="PUT")] == ["error", None]


def test_random_fault_rate_hits_about_that_share_of_calls(sim: SimulatorInfo) -> None:
    sim.control.set_faults(rates={"error": 0.3}, seed=1)
    statuses = [api(sim, "GET", "/settings").status_code for _ in range(200)]
    assert 40 <= statuses.count(500) <= 80


def test_call_log_redacts_passwords(client: SolusIOClient, sim: SimulatorInfo) -> None:
    client.create_user(email="r@example.test", password="do-not-log-me")
    call = sim.control.calls(method="POST")[0]
    assert call["body"] == {
        "email": "r@example.test",
        "password": "***",
        "status": "active",
        "billing_user_id": None,
    }
    assert {"seq", "method", "path", "query", "status", "fault", "ts", "at"} <= set(call)


# --- Starting it ---------------------------------------------------------------------------


@pytest.fixture
def started() -> Iterator[Any]:
    processes: list[subprocess.Popen[str]] = []

    def start(*command: str) -> str:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "bridge.settings"}
        process = subprocess.Popen(
            [sys.executable, *command, "--port", "0", "--token", "cli-token", "--seed-users", "3"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "SolusIO simulator on " in line, line
        return line.split(" on ", 1)[1].split()[0]

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [("-m", "solusio.simulator"), ("manage.py", "run_solusio_simulator")],
    ids=["module", "management-command"],
)
def test_simulator_runs_standalone(started: Any, command: tuple[str, ...]) -> None:
    url = started(*command)
    with SolusIOClient(url, "cli-token", verify_tls=False) as client:
        assert [u.id for u in client.iter_users()] == [1, 2, 3]


def test_usage_pages_count_backup_rows_as_they_serve_them() -> None:
    # The page index counts backup rows per slot without building them: pages of 7 and
    # pages of 100 must serve the same rows, as many as `meta.total` says.
    def every_row(info: SimulatorInfo, per_page: int) -> tuple[list[dict[str, Any]], int]:
        params = {"filter[date_from]": JAN[0].isoformat(), "filter[date_to]": JAN[1].isoformat()}
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = api(
                info, "GET", "/usage", params={**params, "per_page": per_page, "page": page}
            )
            rows += answer.json()["data"]
            meta = answer.json()["meta"]
            if page >= meta["last_page"]:
                return rows, meta["total"]
            page += 1

    with running_simulator(users=30) as info:
        small, total = every_row(info, 7)
        large, _ = every_row(info, 100)
    assert small == large
    assert len(small) == total
    assert sum(r["item"] == "backup" for r in small) > 0
