"""The simulator and the client agree with DESIGN §4's field tables (tests/contract.py)."""

from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from solusio.errors import InvalidResponse
from solusio.records import LimitGroup, Plan, Server, Settings, User
from solusio.testing import SimulatorInfo
from solusio.tests import contract
from solusio.usage_schema import UsageSchemaError, parse_usage_row


def get(sim: SimulatorInfo, path: str, **params: Any) -> Any:
    response = requests.get(
        sim.url + path, params=params, headers={"Authorization": f"Bearer {sim.token}"}, timeout=5
    )
    assert response.status_code == 200, response.text
    return response.json()


LISTS = [
    ("/users", contract.USER, User.parse, {}),
    ("/plans", contract.PLAN, Plan.parse, {}),
    ("/limit_groups", contract.LIMIT_GROUP, LimitGroup.parse, {}),
    ("/servers", contract.SERVER, Server.parse, {"filter[user_id]": 1}),
    (
        "/usage",
        contract.USAGE_ROW,
        parse_usage_row,
        {"filter[date_from]": "2025-01-01", "filter[date_to]": "2025-02-01"},
    ),
]


@pytest.mark.parametrize(("path", "table", "parser", "params"), LISTS)
def test_simulator_lists_carry_every_contract_field_and_the_client_parses_them(
    sim: SimulatorInfo, path: str, table: dict, parser: Any, params: dict
) -> None:
    page = get(sim, path, per_page=100, **params)
    assert contract.problems(page, contract.PAGE) == []
    assert page["data"], f"{path} returned nothing to check"
    for i, item in enumerate(page["data"]):
        assert contract.problems(item, table, f"{path}[{i}]") == []
        parser(item)


def test_usage_rows_for_additional_ips_carry_the_ip_prices(sim: SimulatorInfo) -> None:
    rows = get(
        sim,
        "/usage",
        per_page=100,
        **{"filter[date_from]": "2025-01-01", "filter[date_to]": "2025-02-01"},
    )["data"]
    ip_rows = [r for r in rows if r["item"] == "additional_ip"]
    assert ip_rows
    for row in ip_rows:
        assert contract.problems(row["plan"], contract.USAGE_IP_PLAN) == []


def test_settings_and_user_objects_match_the_contract(sim: SimulatorInfo) -> None:
    settings = get(sim, "/settings")["data"]
    assert contract.problems(settings, contract.SETTINGS) == []
    Settings.parse(settings)
    user = get(sim, "/users/1")["data"]
    assert contract.problems(user, contract.USER) == []


@pytest.mark.parametrize(
    ("table", "parser"),
    [
        (contract.USER, User.parse),
        (contract.PLAN, Plan.parse),
        (contract.LIMIT_GROUP, LimitGroup.parse),
        (contract.SETTINGS, Settings.parse),
        (contract.SERVER, Server.parse),
        (contract.USAGE_ROW, parse_usage_row),
    ],
)
def test_client_parsers_need_no_field_beyond_the_contract(table: dict, parser: Any) -> None:
    parser(contract.example(table))


@pytest.mark.parametrize(
    ("table", "parser"),
    [
        (contract.USER, User.parse),
        (contract.PLAN, Plan.parse),
        (contract.LIMIT_GROUP, LimitGroup.parse),
        (contract.SERVER, Server.parse),
        (contract.USAGE_ROW, parse_usage_row),
    ],
)
def test_client_parsers_ignore_extra_fields(table: dict, parser: Any) -> None:
    item = contract.example(table)
    item["added_in_a_later_solusio"] = {"anything": [1, 2]}
    parser(item)


@pytest.mark.parametrize("field", sorted(set(contract.USAGE_ROW) - contract.USAGE_ROW_OPTIONAL))
def test_usage_parser_rejects_a_row_missing_any_contract_field(field: str) -> None:
    row = contract.example(contract.USAGE_ROW)
    del row[field]
    with pytest.raises(UsageSchemaError, match=field):
        parse_usage_row(row)


@pytest.mark.parametrize(
    ("table", "parser", "field"),
    [
        (contract.USER, User.parse, "email"),
        (contract.USER, User.parse, "billing_user_id"),
        (contract.PLAN, Plan.parse, "tokens_per_hour"),
        (contract.PLAN, Plan.parse, "tokens_per_month"),
        (contract.LIMIT_GROUP, LimitGroup.parse, "running_vms"),
    ],
)
def test_record_parsers_reject_a_missing_required_field(
    table: dict, parser: Any, field: str
) -> None:
    item = contract.example(table)
    del item[field]
    with pytest.raises(InvalidResponse, match=field):
        parser(item)


def test_contract_checker_catches_wrong_types() -> None:
    row = contract.example(contract.USAGE_ROW)
    row["hours"] = "3"
    row["item"] = "snapshot"
    row["user"]["billing_user_id"] = True
    found = contract.problems(row, contract.USAGE_ROW)
    assert len(found) == 3, found


def test_usage_row_parses_into_typed_records() -> None:
    row = contract.example(contract.USAGE_ROW)
    row["plan"].update(ip_tokens_per_hour=1, ip_tokens_per_month=700)
    parsed = parse_usage_row(row)
    assert parsed.started_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert (parsed.tph, parsed.tpm) == (1, 1)
    ip = parse_usage_row({**row, "item": "additional_ip"})
    assert (ip.tph, ip.tpm) == (1, 700)
