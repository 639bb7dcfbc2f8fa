"""The first-day probe: its pure comparison, then against the simulator as it is, with
renamed and missing fields, without a /usage endpoint, and unreachable."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from solusio import probe
from solusio import schemas as s
from solusio.client import SolusIOClient
from solusio.simulator.api import Request
from solusio.testing import SimulatorInfo, fast_client, running_simulator

JAN = ("2025-01-01T00:00:00+00:00", "2025-02-01T00:00:00+00:00")
OPTIONS = probe.ProbeOptions(date_from=JAN[0], date_to=JAN[1])

SMALL = s.obj(
    {
        "id": s.INT,
        "status": s.enum("started", "stopped"),
        "owner": s.nullable(s.obj({"id": s.INT, "email": s.STR})),
        "tags": s.array(s.obj({"name": s.STR})),
        "note": s.STR,
    },
    optional=("note",),
)


def test_compare_sorts_every_field_into_matched_missing_extra_and_mistyped() -> None:
    diff = probe.compare(
        SMALL,
        {"id": "7", "status": "running", "owner": {"id": 1}, "tags": [], "colour": "red"},
    )
    assert diff.matched == ("owner.id", "tags")
    assert diff.missing == ("owner.email",)
    assert diff.extra == ("colour",)
    assert diff.mistyped == (
        "id: expected an integer, got a string",
        "status: 'running' is not one of 'started', 'stopped'",
    )
    assert not diff.clean
    # null where the schema allows it, an optional field absent: both fine.
    fine = probe.compare(SMALL, {"id": 1, "status": "started", "owner": None, "tags": []})
    assert fine.clean
    assert fine.matched == ("id", "owner", "status", "tags")


def test_compare_counts_a_list_field_as_matched_only_when_every_element_has_it() -> None:
    diff = probe.compare(
        s.page(SMALL),
        {
            "data": [
                {"id": 1, "status": "started", "owner": None, "tags": [{"name": "a"}]},
                {"id": 2, "status": "started", "owner": None, "tags": [{"title": "b"}]},
            ],
            "links": {"first": "f", "last": "l", "prev": None, "next": None},
            "meta": {"current_page": 1, "last_page": 1, "path": "p", "per_page": 2, "total": 2},
        },
    )
    assert "data[].id" in diff.matched
    assert "data[].tags[].name" not in diff.matched
    assert diff.missing == ("data[].tags[].name", "meta.from", "meta.to")
    assert diff.extra == ("data[].tags[].title",)
    assert probe.guess_renames(diff) == [("data[].tags[].name", "data[].tags[].title")]
    assert probe.covers(diff, "data[].id")
    assert not probe.covers(diff, "data[].tags")


def test_compare_names_an_object_that_is_not_one() -> None:
    assert probe.compare(SMALL, [1]).mistyped == ("$: expected an object, got an array",)
    assert probe.compare(s.item(SMALL), {"data": None}).mistyped == (
        "data: expected an object, got null",
    )


def test_rows_outside_the_period_are_counted() -> None:
    page = {
        "data": [
            {"started_at": "2025-01-03T00:00:00Z", "ended_at": None},
            {"started_at": "2024-12-01T00:00:00Z", "ended_at": "2025-01-01T00:00:00Z"},
            {"started_at": "2025-02-01T00:00:00+00:00", "ended_at": None},
            {"started_at": "not a time"},
        ]
    }
    assert probe.rows_outside(page, *JAN) == 2
    assert probe.rows_outside({"data": "x"}, *JAN) == 0


@pytest.fixture
def sim() -> Iterator[SimulatorInfo]:
    with running_simulator(users=5, servers=6) as info:
        yield info


@pytest.fixture
def client(sim: SimulatorInfo) -> Iterator[SolusIOClient]:
    with fast_client(sim) as c:
        yield c


def by_name(reports: list[probe.EndpointReport]) -> dict[str, probe.EndpointReport]:
    return {r.endpoint.name: r for r in reports}


def rewrite(
    sim: SimulatorInfo,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    change: Callable[[dict[str, Any]], None],
) -> None:
    """A simulator whose answers on `path` are changed by `change` (each object in `data`)."""
    api = sim.control.simulator.api  # type: ignore[union-attr]
    handle = api.handle

    def changed(request: Request) -> tuple[int, Any]:
        status, payload = handle(request)
        if request.path == path and status == 200:
            data = payload["data"]
            for item in data if isinstance(data, list) else [data]:
                change(item)
        return status, payload

    monkeypatch.setattr(api, "handle", changed)


def test_the_simulator_answers_everything_the_bridge_reads(
    client: SolusIOClient, sim: SimulatorInfo
) -> None:
    sim.control.clear_calls()
    reports = probe.probe(client, OPTIONS)
    assert [(r.endpoint.name, r.status, r.ok, r.needed_missing) for r in reports] == [
        ("settings", 200, True, []),
        ("users", 200, True, []),
        ("plans", 200, True, []),
        ("limit groups", 200, True, []),
        ("servers", 200, True, []),
        ("usage", 200, True, []),
    ]
    assert all(r.fields is not None and r.fields.clean for r in reports)
    # Reads only, one page each; no token without --sso.
    calls = sim.control.calls()
    assert [(c["method"], c["path"], c["query"].get("page")) for c in calls] == [
        ("GET", "/settings", None),
        ("GET", "/users", "1"),
        ("GET", "/plans", "1"),
        ("GET", "/limit_groups", "1"),
        ("GET", "/servers", "1"),
        ("GET", "/usage", "1"),
    ]
    assert calls[-1]["query"]["filter[date_from]"] == JAN[0]
    text = probe.render(reports)
    assert "[PASS] usage: GET /usage: reachable, HTTP 200, 6 items" in text
    assert "    matched: 21 fields, 5 of the 5 the bridge reads" in text  # limit groups
    assert not [line for line in text if line.startswith("[FAIL]")]


def test_a_renamed_plan_field_is_shown_missing_extra_and_unreadable(
    client: SolusIOClient, sim: SimulatorInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rename(plan: dict[str, Any]) -> None:
        plan["price_per_hour"] = plan.pop("tokens_per_hour")

    rewrite(sim, monkeypatch, "/plans", rename)
    plans = by_name(probe.probe(client, OPTIONS, cheap_only=True))["plans"]
    assert not plans.ok
    assert plans.needed_missing == ["tokens_per_hour"]
    assert plans.parse_error == "plans[0].tokens_per_hour: missing"
    text = probe.render([plans])
    assert text[0] == "[FAIL] plans: GET /plans: reachable, HTTP 200, 7 items"
    assert "    missing: data[].tokens_per_hour (the bridge reads it)" in text
    assert "    extra: data[].price_per_hour" in text
    assert (
        "    note: data[].tokens_per_hour is missing and data[].price_per_hour is extra: renamed?"
        in text
    )
    assert "    the bridge cannot read it: plans[0].tokens_per_hour: missing" in text


def test_missing_and_mistyped_usage_fields_point_at_the_usage_source(
    client: SolusIOClient, sim: SimulatorInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def strip(row: dict[str, Any]) -> None:
        del row["started_at"]
        row["server"]["id"] = str(row["server"]["id"])

    rewrite(sim, monkeypatch, "/usage", strip)
    usage = by_name(probe.probe(client, OPTIONS))["usage"]
    assert usage.fields is not None
    assert usage.fields.missing == ("data[].started_at",)
    assert usage.fields.mistyped == ("data[].server.id: expected an integer, got a string",)
    assert sorted(usage.needed_missing) == ["server.id", "started_at"]
    assert any("USAGE_SOURCE=observed" in fix for fix in usage.fixes)


def test_a_solusio_that_ignores_the_date_filters_is_told_apart(
    client: SolusIOClient, sim: SimulatorInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def december(row: dict[str, Any]) -> None:
        row["started_at"], row["ended_at"] = "2024-12-01T00:00:00Z", "2024-12-02T00:00:00Z"

    rewrite(sim, monkeypatch, "/usage", december)
    usage = by_name(probe.probe(client, OPTIONS))["usage"]
    assert usage.notes == [
        "6 rows lie outside the period asked for: the date filters were ignored?"
    ]
    assert usage.fixes == [
        "SOLUSIO_USAGE_FILTER_FROM / SOLUSIO_USAGE_FILTER_TO (the bridge sent "
        "filter[date_from], filter[date_to])"
    ]


def test_a_settings_answer_without_the_bridges_driver_names_the_setting(
    client: SolusIOClient, sim: SimulatorInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rename(settings: dict[str, Any]) -> None:
        drivers = settings["billing_integration"]["drivers"]
        drivers["custom"] = drivers.pop("whmcs")

    rewrite(sim, monkeypatch, "/settings", rename)
    report = by_name(probe.probe(client, OPTIONS, cheap_only=True))["settings"]
    assert report.ok  # the bridge reads the rest; the driver is the doctor's to fix
    assert report.fixes == ["SOLUSIO_BILLING_DRIVER (SolusIO has no driver 'whmcs')"]
    assert "drivers custom (the bridge writes type 'custom', driver 'whmcs')" in report.notes[-1]


def test_a_solusio_without_usage_answers_404_and_the_probe_names_the_settings(
    client: SolusIOClient, sim: SimulatorInfo
) -> None:
    sim.control.fail_next("error", path="/usage", status=404)
    reports = by_name(probe.probe(client, OPTIONS))
    usage = reports["usage"]
    assert (usage.reachable, usage.status, usage.ok) == (True, 404, False)
    assert usage.fixes == [
        "SOLUSIO_USAGE_PATH (the bridge asked /usage), or USAGE_SOURCE=observed to bill from "
        "the servers API"
    ]
    assert reports["servers"].ok  # the rest goes on
    text = probe.render([usage])
    assert text[:2] == [
        "[FAIL] usage: GET /usage: reachable, HTTP 404",
        "    error: HTTP 404: Server Error",
    ]


def test_an_unreachable_solusio_is_reported_per_endpoint_without_retries() -> None:
    with SolusIOClient("http://127.0.0.1:9/api/v1", "t", connect_timeout=0.5) as client:
        reports = probe.probe(client, OPTIONS, cheap_only=True)
    assert [(r.reachable, r.status) for r in reports] == [(False, None)] * 4
    assert reports[0].fixes == ["SOLUSIO_API_URL (and SOLUSIO_VERIFY_TLS for a private CA)"]
    assert probe.render(reports[:1])[0].startswith(
        "[FAIL] settings: GET /settings: not reachable (GET /settings: connection failed"
    )


def test_a_wrong_token_names_the_token_setting(sim: SimulatorInfo) -> None:
    with SolusIOClient(sim.url, "wrong") as client:
        report = probe.probe(client, OPTIONS, cheap_only=True)[0]
    assert (report.status, report.fixes) == (401, ["SOLUSIO_API_TOKEN (an admin user's API token)"])


def test_sso_creates_one_token_for_the_named_user_and_never_shows_it(
    client: SolusIOClient, sim: SimulatorInfo, tmp_path: Path
) -> None:
    options = probe.ProbeOptions(
        date_from=JAN[0],
        date_to=JAN[1],
        sso_email="customer2@example.test",
        login_url_template="https://solusio.example.com/auth/by_token?token={token}",
    )
    reports = probe.probe(client, options)
    token = reports[-1]
    assert (token.endpoint.path, token.status, token.ok) == ("/users/2/tokens", 201, True)
    assert [c["path"] for c in sim.control.calls(method="POST")] == ["/users/2/tokens"]
    secret = token.answer["data"]["access_token"]
    text = probe.render(reports)
    assert (
        "    note: login URL: https://solusio.example.com/auth/by_token?token=*** "
        "(open one by hand to check the route)" in text
    )
    probe.save(reports, tmp_path, text)
    saved = "".join(p.read_text() for p in tmp_path.iterdir())
    assert secret not in saved
    assert secret not in "\n".join(text)

    missing = probe.ProbeOptions(date_from=JAN[0], date_to=JAN[1], sso_email="no@example.test")
    nobody = probe.probe(client, missing)[-1]
    assert nobody.error == "no SolusIO user has that e-mail: no token was created"
    assert len(sim.control.calls(method="POST")) == 1


def test_saved_answers_are_raw_but_without_secrets_or_e_mail_addresses(
    client: SolusIOClient, sim: SimulatorInfo, tmp_path: Path
) -> None:
    client.patch_settings(
        {
            "billing_integration": {"drivers": {"whmcs": {"url": "u", "token": "shared-secret"}}},
            "mail": {"password": "smtp-password", "username": "mailer@example.test"},
        }
    )
    reports = probe.probe(client, OPTIONS)
    written = probe.save(reports, tmp_path / "ticket", probe.render(reports))
    assert sorted(p.name for p in written) == [
        "limit_groups.json",
        "plans.json",
        "report.txt",
        "servers.json",
        "settings.json",
        "usage.json",
        "users.json",
    ]
    everything = "".join(p.read_text() for p in written)
    for secret in ("shared-secret", "smtp-password", "@example.test", sim.token):
        assert secret not in everything
    settings = json.loads((tmp_path / "ticket" / "settings.json").read_text())
    assert settings["request"] == {"method": "GET", "path": "/settings", "params": {}}
    mail = settings["answer"]["data"]["mail"]
    assert (mail["password"], mail["username"]) == ("***", "***@***")
    plans = json.loads((tmp_path / "ticket" / "plans.json").read_text())
    assert plans["answer"]["data"][0]["tokens_per_hour"] == 7  # prices are not secrets
    users = json.loads((tmp_path / "ticket" / "users.json").read_text())
    assert {u["email"] for u in users["answer"]["data"]} == {"***@***"}
