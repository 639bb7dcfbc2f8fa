"""The simulator answers as the official Go SDK reads SolusIO (solusio.schemas), and the
client's records read those answers as the SDK types them."""

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import requests

from solusio import schemas
from solusio.errors import InvalidResponse, NotFound
from solusio.records import Plan, Server, User
from solusio.testing import SimulatorInfo, fast_client, running_simulator
from solusio.tests.sdk_fixtures import PLAN_UPDATE, SETTINGS_PATCH

NOW = 1_735_689_600 + 14 * 86_400  # 2025-01-15: churn servers are alive too


def call(sim: SimulatorInfo, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token or sim.token}"}
    return requests.request(method, sim.url + path, headers=headers, timeout=10, **kw)


def ok(sim: SimulatorInfo, method: str, path: str, schema: schemas.Schema, **kw: Any) -> Any:
    """The answer's JSON, after checking it is a 2xx that conforms to `schema`."""
    response = call(sim, method, path, **kw)
    assert response.status_code in (200, 201), response.text
    body = response.json()
    assert schemas.problems(schema, body) == []
    return body


@pytest.fixture(scope="module")
def busy() -> Any:
    """A simulator with enough users and servers for every status and both backup states."""
    with running_simulator(users=60, servers=400, now=NOW) as info:
        yield info


# --- one test per resource of the SDK ------------------------------------------------------


def test_users_list_get_and_status_filter(sim: SimulatorInfo) -> None:
    page = ok(sim, "GET", "/users", schemas.page(schemas.USER), params={"per_page": 100})
    ok(sim, "GET", "/users/1", schemas.item(schemas.USER))
    statuses = Counter(u["status"] for u in page["data"])
    for status in schemas.USER_STATUSES:
        found = ok(
            sim, "GET", "/users", schemas.page(schemas.USER), params={"filter[status]": status}
        )
        assert found["meta"]["total"] == statuses[status]
        assert {u["status"] for u in found["data"]} <= {status}
    assert statuses["active"] > 0


def test_user_roles_carry_default_and_users_count(sim: SimulatorInfo) -> None:
    roles = ok(sim, "GET", "/roles", schemas.page(schemas.ROLE))["data"]
    by_name = {r["name"]: r for r in roles}
    assert by_name["client"]["is_default"] is True
    assert by_name["client"]["users_count"] == 10
    new = {"email": "n@example.test", "password": "12345678"}
    ok(sim, "POST", "/users", schemas.item(schemas.USER), json=new)
    client_role = ok(sim, "GET", "/roles/2", schemas.item(schemas.ROLE))["data"]
    assert client_role["users_count"] == 11
    user = ok(sim, "GET", "/users/1", schemas.item(schemas.USER))["data"]
    assert user["roles"] == [client_role]


def test_plans_list_get_and_search(sim: SimulatorInfo) -> None:
    plans = ok(sim, "GET", "/plans", schemas.page(schemas.PLAN))["data"]
    assert len(plans) == 7
    one = ok(sim, "GET", "/plans/4", schemas.item(schemas.PLAN))["data"]
    assert one == plans[3]
    assert one["params"]["ram"] == 4096 * 1024 * 1024  # bytes, as the SDK's PlanParams
    assert one["price"]["per_month"] == "200.00"  # 20,000 tokens at the nominal 0.01
    found = ok(sim, "GET", "/plans", schemas.page(schemas.PLAN), params={"filter[search]": "2 gb"})
    assert [p["id"] for p in found["data"]] == [2, 3]
    assert call(sim, "GET", "/plans/99").status_code == 404


def test_plan_update_keeps_the_whole_request(sim: SimulatorInfo) -> None:
    assert schemas.problems(schemas.PLAN_UPDATE_REQUEST, PLAN_UPDATE) == []
    answer = ok(sim, "PUT", "/plans/4", schemas.item(schemas.PLAN), json=PLAN_UPDATE)["data"]
    again = ok(sim, "GET", "/plans/4", schemas.item(schemas.PLAN))["data"]
    assert answer == again
    for key, sent in PLAN_UPDATE.items():
        if key == "limits":
            assert {k: again["limits"][k] for k in sent} == sent
        elif key.startswith("available_"):
            assert [x["id"] for x in again[key]] == sent
        else:
            assert again[key] == sent, key
    assert again["limits"]["disk_iops"]["unit"] == "iops"  # not in the request: kept
    # One default plan, as SolusIO has.
    plans = ok(sim, "GET", "/plans", schemas.page(schemas.PLAN))["data"]
    assert [p["id"] for p in plans if p["is_default"]] == [4]
    assert Plan.parse(again).backup_price == Decimal("12.5")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"is_visible": "no"}, "is_visible"),
        ({"reset_limit_policy": "weekly"}, "reset_limit_policy"),
        ({"limits": {"backups_number": {"is_enabled": True, "limit": 1, "unit": "GiB"}}}, "limits"),
        ({"backup_price": -1}, "backup_price"),
        ({"available_locations": [7]}, "available_locations"),
        ({"tokens_per_hour": 1.5}, "tokens_per_hour"),
    ],
)
def test_plan_update_refuses_what_the_sdk_could_not_send(
    sim: SimulatorInfo, change: dict[str, Any], field: str
) -> None:
    before = ok(sim, "GET", "/plans/2", schemas.item(schemas.PLAN))["data"]
    whole = {**schemas.plan_update_request(before), **change}
    response = call(sim, "PUT", "/plans/2", json=whole)
    assert response.status_code == 422
    assert list(response.json()["errors"]) == [field]
    assert ok(sim, "GET", "/plans/2", schemas.item(schemas.PLAN))["data"] == before


def test_plan_update_refuses_a_partial_request_naming_what_is_missing(sim: SimulatorInfo) -> None:
    before = ok(sim, "GET", "/plans/2", schemas.item(schemas.PLAN))["data"]
    response = call(sim, "PUT", "/plans/2", json={"tokens_per_hour": 15, "tokens_per_month": 9})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == set(schemas.PLAN_UPDATE_REQUEST["required"]) - {
        "tokens_per_hour",
        "tokens_per_month",
    }
    assert errors["is_visible"] == ["The is visible field is required."]
    assert ok(sim, "GET", "/plans/2", schemas.item(schemas.PLAN))["data"] == before


def test_a_plan_sent_back_unchanged_is_accepted_and_unchanged(sim: SimulatorInfo) -> None:
    before = ok(sim, "GET", "/plans/3", schemas.item(schemas.PLAN))["data"]
    request = schemas.plan_update_request(before)
    assert schemas.problems(schemas.PLAN_UPDATE_REQUEST, request) == []
    assert ok(sim, "PUT", "/plans/3", schemas.item(schemas.PLAN), json=request)["data"] == before


def test_limit_groups(sim: SimulatorInfo) -> None:
    groups = ok(sim, "GET", "/limit_groups", schemas.page(schemas.LIMIT_GROUP))["data"]
    assert [g["id"] for g in groups] == [1, 2, 3]


def test_settings_get_and_patch_keep_every_section(sim: SimulatorInfo) -> None:
    fresh = ok(sim, "GET", "/settings", schemas.item(schemas.SETTINGS))["data"]
    assert set(fresh["features"]) == set(schemas.FEATURES)
    assert fresh["limit_group"]["id"] == 1
    patched = ok(sim, "PATCH", "/settings", schemas.item(schemas.SETTINGS), json=SETTINGS_PATCH)
    again = ok(sim, "GET", "/settings", schemas.item(schemas.SETTINGS))["data"]
    assert patched["data"] == again
    assert again["theme"] == SETTINGS_PATCH["theme"]
    assert again["network_rules"]["smtp"] is False
    assert again["network_rules"]["arp"] is True  # not sent: kept
    created = again["notifications"]["server_create"]
    assert created["enabled"] is False
    assert created["subject_templates"] == {"en_US": "", "de_DE": "Ihr Server"}
    assert again["non_existent_vms_remover"] == {"enabled": True, "interval": 12}
    assert again["update"]["scheduled_days"] == [6, 7]
    assert again["features"]["hide_location_section"] is True
    assert again["limit_group"]["name"] == "Unlimited"
    sim.control.simulator.state.limit_groups[2]["name"] = "Unlimited (renamed)"  # type: ignore[union-attr]
    renamed = ok(sim, "GET", "/settings", schemas.item(schemas.SETTINGS))["data"]
    assert renamed["limit_group"]["name"] == "Unlimited (renamed)"
    bad = call(sim, "PATCH", "/settings", json={"non_existent_vms_remover": {"interval": "x"}})
    assert bad.status_code == 422


def test_servers_list_and_get(busy: SimulatorInfo) -> None:
    seen: list[dict[str, Any]] = []
    page_no = 1
    while True:
        page = ok(
            busy,
            "GET",
            "/servers",
            schemas.page(schemas.SERVER),
            params={"per_page": 100, "page": page_no},
        )
        seen.extend(page["data"])
        if page["links"]["next"] is None:
            break
        page_no += 1
    assert len(seen) == page["meta"]["total"] > 200
    statuses = Counter(s["status"] for s in seen)
    assert set(statuses) == set(schemas.SERVER_STATUSES), statuses
    assert statuses.most_common(1)[0][0] == "started"
    backups = Counter(s["backup_settings"]["enabled"] for s in seen)
    assert backups[True] > 0
    assert backups[False] > 0
    assert any(len(s["ips"]) == 2 for s in seen)
    assert all(s["is_processing"] == (s["status"] == "processing") for s in seen)
    for server in seen[:: len(seen) // 20]:
        one = ok(busy, "GET", f"/servers/{server['id']}", schemas.item(schemas.SERVER))["data"]
        assert one == server
        parsed = Server.parse(one)
        assert parsed.backups_enabled is server["backup_settings"]["enabled"]
        assert parsed.ips == tuple(ip["ip"] for ip in server["ips"])
        assert parsed.status == server["status"]
    assert call(busy, "GET", "/servers/999999999").status_code == 404


def test_servers_filters(busy: SimulatorInfo) -> None:
    everyone = ok(busy, "GET", "/servers", schemas.page(schemas.SERVER), params={"per_page": 1})
    total = everyone["meta"]["total"]
    counted = 0
    for status in schemas.SERVER_STATUSES:
        page = ok(
            busy,
            "GET",
            "/servers",
            schemas.page(schemas.SERVER),
            params={"filter[status]": status, "per_page": 100},
        )
        assert {s["status"] for s in page["data"]} <= {status}
        counted += page["meta"]["total"]
    assert counted == total
    mine = ok(
        busy,
        "GET",
        "/servers",
        schemas.page(schemas.SERVER),
        params={"filter[user_id]": 3, "filter[status]": "started", "per_page": 100},
    )["data"]
    assert mine
    assert {(s["user"]["id"], s["status"]) for s in mine} == {(3, "started")}
    other = call(busy, "GET", "/servers", params={"filter[compute_resource_id]": 2}).json()
    assert other["meta"]["total"] == 0


def test_hand_made_servers_carry_their_status_and_backups(sim: SimulatorInfo) -> None:
    stopped = {"filter[status]": "stopped", "per_page": 100}
    before = call(sim, "GET", "/servers", params=stopped).json()["meta"]["total"]
    made = sim.control.add_server(
        user_id=1, plan_id=2, created_at="2020-01-01", status="stopped", backups=True
    )
    server = ok(sim, "GET", f"/servers/{made['id']}", schemas.item(schemas.SERVER))["data"]
    assert (server["status"], server["backup_settings"]["enabled"]) == ("stopped", True)
    assert server["next_scheduled_backup_at"] is not None
    assert server["plan"]["backup_price"] == 10
    after = call(sim, "GET", "/servers", params=stopped).json()
    assert after["meta"]["total"] == before + 1
    assert made["id"] in {s["id"] for s in after["data"]}


def test_account_and_email_password_login(sim: SimulatorInfo) -> None:
    account = ok(sim, "GET", "/account", schemas.item(schemas.USER))["data"]
    login = requests.post(
        sim.url + "/auth/login",
        json={"email": account["email"], "password": sim.token},
        timeout=5,
    )
    assert login.status_code == 200
    body = login.json()
    assert schemas.problems(schemas.item(schemas.AUTH_LOGIN_RESPONSE), body) == []
    credentials = body["data"]["credentials"]
    assert credentials["token_type"] == "Bearer"
    again = call(sim, "GET", "/account", token=credentials["access_token"])
    assert again.json()["data"] == account
    wrong = requests.post(
        sim.url + "/auth/login", json={"email": account["email"], "password": "nope"}, timeout=5
    )
    assert wrong.status_code == 422
    assert call(sim, "GET", "/account", token="nope").status_code == 401


# --- the schemas can fail, and the records read through them ------------------------------


def test_schemas_name_missing_fields_and_wrong_types() -> None:
    plan = {"id": 1, "name": "x"}
    found = schemas.problems(schemas.PLAN, plan)
    assert any("'price' is a required property" in f for f in found)
    server_user = {"id": "1", "email": "a@b.c", "created_at": "2025-01-01T00:00:00Z"}
    found = schemas.problems(schemas.USER, {**server_user, "status": "running", "roles": []})
    assert "$.id: '1' is not of type 'integer'" in found
    assert any(f.startswith("$.status: 'running' is not one of") for f in found)


def test_record_readers_type_fields_as_the_sdk_does() -> None:
    user = {"id": 1, "email": "a@example.test", "status": "active", "billing_user_id": None}
    assert User.parse(user).billing_user_id is None
    with pytest.raises(InvalidResponse, match=r"user\.billing_user_id: expected an integer"):
        User.parse({**user, "billing_user_id": "7"})
    plan = {"id": 1, "name": "p", "tokens_per_hour": 1, "tokens_per_month": 2}
    assert Plan.parse(plan).backup_price is None  # an older SolusIO without paid backups
    assert Plan.parse({**plan, "backup_price": 20}).backup_price == Decimal(20)
    with pytest.raises(InvalidResponse, match="backup_price: expected a number"):
        Plan.parse({**plan, "backup_price": "20"})
    server = {"id": 1, "uuid": "u", "name": "s", "status": "started", "user": {"id": 2}}
    assert Server.parse(server).backups_enabled is None
    with pytest.raises(InvalidResponse, match=r"backup_settings\.enabled: missing"):
        Server.parse({**server, "backup_settings": {}})
    with pytest.raises(InvalidResponse, match=r"ips\[0\]\.ip: missing"):
        Server.parse({**server, "ips": [{"id": 1}]})


def test_the_client_reads_single_plans_and_servers_and_filters_by_status(
    busy: SimulatorInfo,
) -> None:
    with fast_client(busy) as client:
        assert client.get_plan(3) == {p.id: p for p in client.list_plans()}[3]
        stopped = list(client.iter_servers(status="stopped"))
        assert stopped
        assert {s.status for s in stopped} == {"stopped"}
        one = client.get_server(stopped[0].id)
        assert one == stopped[0]
        assert one.ips
        mine = list(client.iter_servers(user_id=one.user_id, status="stopped"))
        assert one in mine
        with pytest.raises(NotFound):
            client.get_server(999_999_999)


def test_three_demo_servers_have_paid_backups_and_usage_has_no_backup_rows() -> None:
    # The Procfile's simulator: two customers, the nine showcase servers.
    with running_simulator(users=2, servers=9, now=NOW) as info:
        servers = call(info, "GET", "/servers", params={"per_page": 100}).json()["data"]
        with_backups = {
            (s["user"]["id"], s["id"]) for s in servers if s["backup_settings"]["enabled"]
        }
        assert with_backups == {(1, 1), (2, 4), (1, 9)}
        assert all(s["plan"]["backup_price"] > 0 for s in servers if s["id"] in (1, 4, 9))
        period = {"filter[date_from]": "2025-01-01", "filter[date_to]": "2025-01-15"}
        usage = call(info, "GET", "/usage", params={**period, "per_page": 100}).json()["data"]
        assert {row["item"] for row in usage} == {"server", "additional_ip"}


def test_server_addresses_come_from_either_list_primary_first() -> None:
    server = {"id": 1, "uuid": "u", "name": "s", "status": "started"}
    by_family = {
        "ipv4": [
            {"id": 2, "ip": "192.0.2.7", "is_primary": False},
            {"id": 1, "ip": "192.0.2.5", "is_primary": True},
        ],
        "ipv6": [],
    }
    sdk_list = [{"id": 3, "ip": "198.51.100.1", "ip_block": {}}]
    assert Server.parse({**server, "ip_addresses": by_family}).ips == ("192.0.2.5", "192.0.2.7")
    assert Server.parse({**server, "ips": sdk_list}).ips == ("198.51.100.1",)
    both = Server.parse({**server, "ips": sdk_list, "ip_addresses": by_family})
    assert both.ips == ("192.0.2.5", "192.0.2.7")
    assert Server.parse(server).ips is None
    with pytest.raises(InvalidResponse, match=r"ip_addresses\.ipv4: expected a list"):
        Server.parse({**server, "ip_addresses": {"ipv4": "192.0.2.5"}})
