"""`manage.py solusio_probe` against the simulator: the report, --save, --sso, a SolusIO
without /usage, and bad arguments."""

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.testing import run_command
from solusio.testing import SimulatorInfo
from solusio.testing import solusio_settings as solusio_settings  # re-exported fixture
from solusio.testing import solusio_sim as solusio_sim  # re-exported fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim(solusio_settings: SimulatorInfo, settings: Any) -> SimulatorInfo:
    settings.SOLUSIO_LOGIN_URL_TEMPLATE = "https://sol.example.com/auth/by_token?token={token}"
    return solusio_settings


def probe(*args: str) -> tuple[bool, str]:
    return run_command("solusio_probe", *args)


def test_probe_passes_against_the_simulator(sim: SimulatorInfo) -> None:
    ok, out = probe("--period", "2025-01")
    assert ok, out
    heads = [line.split(": reachable")[0] for line in out.splitlines() if line.startswith("[")]
    assert heads == [
        "[PASS] settings: GET /settings",
        "[PASS] users: GET /users",
        "[PASS] plans: GET /plans",
        "[PASS] limit groups: GET /limit_groups",
        "[PASS] servers: GET /servers",
        "[PASS] usage: GET /usage",
    ]
    assert "[PASS] users: GET /users: reachable, HTTP 200, 10 items" in out
    usage = sim.control.calls(path="/usage")[0]["query"]
    assert usage["filter[date_from]"] == "2025-01-01T00:00:00+00:00"
    assert not sim.control.calls(method="POST")
    _, every = probe("--period", "2025-01", "--verbosity", "2")
    assert "      = data[].tokens_per_hour" in every


def test_probe_saves_a_redacted_ticket_and_tries_single_sign_on(
    sim: SimulatorInfo, tmp_path: Path
) -> None:
    ok, out = probe(
        "--period", "2025-01", "--save", str(tmp_path), "--sso", "customer3@example.test"
    )
    assert ok, out
    assert "[PASS] login token: POST /users/3/tokens: reachable, HTTP 201" in out
    assert "login URL: https://sol.example.com/auth/by_token?token=***" in out
    assert f"saved 8 files in {tmp_path} (redacted)" in out
    token = json.loads((tmp_path / "login_token.json").read_text())
    assert token["answer"]["data"]["access_token"] == "***"
    assert "@example.test" not in (tmp_path / "report.txt").read_text()
    assert "@example.test" not in (tmp_path / "users.json").read_text()


def test_probe_fails_on_a_solusio_without_usage_and_names_the_settings(
    sim: SimulatorInfo,
) -> None:
    sim.control.fail_next("error", path="/usage", status=404)
    ok, out = probe("--period", "2025-01")
    assert not ok
    assert "[FAIL] usage: GET /usage: reachable, HTTP 404" in out
    assert (
        "    fix: set SOLUSIO_USAGE_PATH (the bridge asked /usage), or USAGE_SOURCE=observed "
        "to bill from the servers API" in out
    )
    assert "CommandError: 1 of 6 endpoints differ: usage" in out


def test_probe_asks_the_configured_usage_path(sim: SimulatorInfo, settings: Any) -> None:
    settings.SOLUSIO_USAGE_PATH = "/billing/usage"
    ok, out = probe("--period", "2025-01")
    assert not ok
    assert "[FAIL] usage: GET /billing/usage: reachable, HTTP 404" in out
    assert "SOLUSIO_USAGE_PATH (the bridge asked /billing/usage)" in out


def test_probe_refuses_a_bad_period_and_a_missing_solusio(
    sim: SimulatorInfo, settings: Any
) -> None:
    ok, out = probe("--period", "2025-13")
    assert not ok
    assert "CommandError: period must look like 2026-10, got '2025-13'" in out
    settings.SOLUSIO_API_URL = ""
    ok, out = probe()
    assert not ok
    assert "CommandError: SOLUSIO_API_URL and SOLUSIO_API_TOKEN must both be set" in out
    assert not sim.control.calls()
