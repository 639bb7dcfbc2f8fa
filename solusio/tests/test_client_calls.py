"""Every client call against the simulator over real HTTP."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from solusio import schemas
from solusio.client import SolusIOClient
from solusio.errors import NotFound, ValidationFailed
from solusio.records import User, UserStatus
from solusio.testing import SimulatorInfo
from solusio.usage_schema import UsageItem


def test_users_are_listed_found_by_email_and_fetched(client: SolusIOClient) -> None:
    users = list(client.iter_users())
    assert [u.id for u in users] == list(range(1, 11))
    found = client.find_user_by_email("  Customer3@Example.test ")
    assert found is not None
    assert found.id == 3
    assert client.get_user(3) == found
    assert client.find_user_by_email("nobody@example.test") is None


def test_find_by_email_ignores_substring_hits(client: SolusIOClient) -> None:
    # filter[search] matches customer1, customer10 ... for "customer1@": only one is exact.
    client.create_user(email="xcustomer1@example.test", password="long-enough-1")
    found = client.find_user_by_email("customer1@example.test")
    assert found is not None
    assert found.email == "customer1@example.test"


def test_user_is_created_updated_and_deleted(client: SolusIOClient) -> None:
    user = client.create_user(
        email="jane@example.co.uk",
        password="s3cret-password",
        billing_user_id=77,
        limit_group_id=3,
        language_id=2,
        roles=[2],
    )
    assert (user.email, user.status, user.billing_user_id, user.limit_group_id) == (
        "jane@example.co.uk",
        "active",
        77,
        3,
    )
    updated = client.update_user(user.id, email="jane.doe@example.co.uk", billing_user_id=None)
    assert updated.email == "jane.doe@example.co.uk"
    assert updated.billing_user_id is None
    client.delete_user(user.id)
    with pytest.raises(NotFound):
        client.get_user(user.id)


@pytest.mark.parametrize("status", list(UserStatus))
def test_user_status_is_set_with_a_put(
    client: SolusIOClient, sim: SimulatorInfo, status: UserStatus
) -> None:
    assert client.set_user_status(2, status).status == status
    assert sim.control.calls(method="PUT")[-1]["body"] == {"status": str(status)}


def test_unknown_status_is_refused_before_any_call(
    client: SolusIOClient, sim: SimulatorInfo
) -> None:
    with pytest.raises(ValueError, match="banned"):
        client.set_user_status(2, "banned")
    assert sim.control.calls(method="PUT") == []


def test_create_or_link_creates_a_missing_user(client: SolusIOClient, sim: SimulatorInfo) -> None:
    result = client.create_or_link_user(email="new@example.test", billing_user_id=501)
    assert (result.created, result.relinked) == (True, False)
    assert result.user.billing_user_id == 501
    posts = sim.control.calls(method="POST", path="/users")
    assert len(posts) == 1
    assert posts[0]["body"]["password"] == "***"  # generated, and never logged


def test_create_or_link_links_an_existing_user_like_the_whmcs_module(
    client: SolusIOClient, sim: SimulatorInfo
) -> None:
    result = client.create_or_link_user(email="customer4@example.test", billing_user_id=904)
    assert (result.created, result.relinked, result.user.id) == (False, True, 4)
    assert client.get_user(4).billing_user_id == 904
    assert [c["body"] for c in sim.control.calls(method="PUT")] == [{"billing_user_id": 904}]
    # Already linked: nothing to write.
    sim.control.clear_calls()
    again = client.create_or_link_user(email="customer4@example.test", billing_user_id=904)
    assert (again.created, again.relinked) == (False, False)
    assert [c["method"] for c in sim.control.calls()] == ["GET"]


def test_create_or_link_treats_email_taken_as_exists(
    client: SolusIOClient, sim: SimulatorInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A race: the look-up misses, then someone else creates the user before our POST.
    client.create_user(email="race@example.test", password="password-1", billing_user_id=5)
    real_find = client.find_user_by_email
    lookups: list[str] = []

    def find_missing_the_first_time(email: str) -> User | None:
        lookups.append(email)
        return None if len(lookups) == 1 else real_find(email)

    monkeypatch.setattr(client, "find_user_by_email", find_missing_the_first_time)
    sim.control.clear_calls()
    result = client.create_or_link_user(email="race@example.test", billing_user_id=6)
    assert (result.created, result.relinked) == (False, True)
    assert [(c["method"], c["status"]) for c in sim.control.calls()] == [
        ("POST", 422),
        ("GET", 200),
        ("PUT", 200),
    ]


def test_create_or_link_reraises_other_validation_errors(client: SolusIOClient) -> None:
    with pytest.raises(ValidationFailed) as caught:
        client.create_or_link_user(email="bad@example.test", billing_user_id=1, password="short")
    assert "password" in caught.value.errors


def test_one_time_login_token(client: SolusIOClient, sim: SimulatorInfo) -> None:
    token = client.create_login_token(3)
    assert len(token) > 20
    call = sim.control.calls(method="POST")[-1]
    assert (call["path"], call["body"], call["status"]) == (
        "/users/3/tokens",
        {"is_one_time": True},
        201,
    )
    with pytest.raises(NotFound):
        client.create_login_token(999)


def test_plans_are_listed_and_repriced(client: SolusIOClient) -> None:
    plans = {p.id: p for p in client.list_plans()}
    assert [
        (plans[i].name, plans[i].tokens_per_hour, plans[i].tokens_per_month) for i in (1, 2, 3, 4)
    ] == [
        ("1 Core, 1 GB RAM", 7, 5000),
        ("1 Core, 2 GB RAM", 14, 10000),
        ("2 Cores, 2 GB RAM", 21, 15000),
        ("2 Cores, 4 GB RAM", 28, 20000),
    ]
    # The special cases of DESIGN §5: hourly only, fixed monthly, free.
    assert (plans[5].tokens_per_month, plans[6].tokens_per_hour) == (0, 0)
    assert (plans[7].tokens_per_hour, plans[7].tokens_per_month) == (0, 0)
    updated = client.update_plan_prices(
        2, tokens_per_hour=15, tokens_per_month=10500, ip_tokens_per_hour=2, ip_tokens_per_month=900
    )
    assert (updated.tokens_per_hour, updated.tokens_per_month) == (15, 10500)
    assert (updated.ip_tokens_per_hour, updated.ip_tokens_per_month) == (2, 900)
    assert {p.id: p for p in client.list_plans()}[2] == updated


def test_a_price_push_sends_the_whole_plan_back(client: SolusIOClient, sim: SimulatorInfo) -> None:
    # Flags the bridge does not own must survive a price change (a partial PUT may reset them).
    remote = sim.control.simulator.state.plans[3]  # type: ignore[union-attr]
    remote.update(is_visible=False, backup_price=12.5, reset_limit_policy="vm_created_day")
    sim.control.clear_calls()

    updated = client.update_plan_prices(3, tokens_per_hour=22)

    assert [(c["method"], c["path"]) for c in sim.control.calls()] == [
        ("GET", "/plans/3"),
        ("PUT", "/plans/3"),
    ]
    sent = sim.control.calls(method="PUT")[0]["body"]
    assert schemas.problems(schemas.PLAN_UPDATE_REQUEST, sent) == []
    assert (sent["tokens_per_hour"], sent["tokens_per_month"]) == (22, 15000)
    assert (sent["is_visible"], sent["backup_price"]) == (False, 12.5)
    assert sent["available_locations"] == [1]
    assert (updated.tokens_per_hour, updated.is_visible, updated.backup_price) == (
        22,
        False,
        Decimal("12.5"),
    )
    assert remote["reset_limit_policy"] == "vm_created_day"


def test_plan_prices_must_be_whole_tokens(client: SolusIOClient) -> None:
    with pytest.raises(ValueError, match="tokens_per_hour"):
        client.update_plan_prices(1, tokens_per_hour=7.5)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        client.update_plan_prices(99, tokens_per_hour=1)


def test_limit_groups_are_listed(client: SolusIOClient) -> None:
    groups = client.list_limit_groups()
    assert [g.name for g in groups] == ["Default", "Unlimited", "Trial"]
    assert groups[0].vms.limit == 5
    assert groups[0].running_vms.is_enabled is True


def test_settings_start_like_a_fresh_solusio_and_are_patched(client: SolusIOClient) -> None:
    fresh = client.get_settings()
    assert fresh.allow_registration is True
    assert fresh.billing_integration_type == "none"
    patched = client.patch_settings(
        {
            "features": {"allow_registration": False},
            "billing_integration": {
                "type": "custom",
                "drivers": {
                    "whmcs": {"url": "https://billing.example/api/solusio", "token": "t0k"}
                },
            },
        }
    )
    assert patched.allow_registration is False
    assert (patched.billing_integration_type, patched.billing_url) == (
        "custom",
        "https://billing.example/api/solusio",
    )
    assert patched.billing_token == "t0k"
    assert "t0k" not in repr(patched)
    assert client.get_settings() == patched


def test_settings_patch_type_errors_are_validation_errors(client: SolusIOClient) -> None:
    with pytest.raises(ValidationFailed) as caught:
        client.patch_settings({"features": {"allow_registration": "no"}})
    assert "features.allow_registration" in caught.value.errors


def test_servers_of_a_user(client: SolusIOClient) -> None:
    servers = list(client.iter_servers(user_id=1))
    assert servers
    assert {s.user_id for s in servers} == {1}
    assert list(client.iter_servers(user_id=12345)) == []
    everyone = list(client.iter_servers())
    assert {s.id for s in servers} <= {s.id for s in everyone}


def test_usage_for_a_period(client: SolusIOClient) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = list(client.iter_usage(start, start + timedelta(days=31)))
    assert rows
    assert {r.item for r in rows} == {UsageItem.SERVER, UsageItem.ADDITIONAL_IP}
    for row in rows:
        assert start <= row.started_at
        assert row.ended_at is not None
        assert row.ended_at <= start + timedelta(days=31)


def test_usage_needs_aware_ordered_bounds(client: SolusIOClient) -> None:
    with pytest.raises(ValueError, match="timezone"):
        list(client.iter_usage(datetime(2025, 1, 1), datetime(2025, 2, 1)))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="end after"):
        list(client.iter_usage(start, start))


def test_client_reads_url_and_token_from_settings(solusio_settings: SimulatorInfo) -> None:
    with SolusIOClient() as c:
        assert c.base_url == solusio_settings.url
        assert c.get_user(1).id == 1


def test_client_refuses_to_start_without_configuration(settings) -> None:
    from django.core.exceptions import ImproperlyConfigured

    settings.SOLUSIO_API_URL = ""
    with pytest.raises(ImproperlyConfigured):
        SolusIOClient()
