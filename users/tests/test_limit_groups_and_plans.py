"""Limit groups (Step 5) and plan prices (Step 3): mirrored, chosen, compared, pushed."""

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from pricing import plan_sync
from pricing.models import Plan
from solusio.testing import SimulatorInfo
from users import services
from users.models import Customer, LimitGroup, SolusioDefaults
from users.tests.conftest import deliver_all, solusio_user

pytestmark = pytest.mark.django_db


def test_limit_groups_are_mirrored_with_their_limits(sim: SimulatorInfo) -> None:
    services.mirror_limit_groups()
    default = LimitGroup.objects.get(pk=1)
    assert (default.name, default.vms_limit, default.vms_enabled) == ("Default", 5, True)
    assert (default.running_vms_limit, default.additional_ips_limit) == (3, 2)
    unlimited = LimitGroup.objects.get(pk=2)
    assert (unlimited.name, unlimited.vms_enabled) == ("Unlimited", False)
    del sim.control.simulator.state.limit_groups[3]  # type: ignore[union-attr]
    services.mirror_limit_groups()
    assert LimitGroup.objects.get(pk=3).in_solusio is False


def test_the_command_mirrors_and_sets_the_default(sim: SimulatorInfo) -> None:
    out = StringIO()
    call_command("solusio_limit_groups", "--default", "2", stdout=out)
    assert "2\tUnlimited (default)" in out.getvalue()
    assert SolusioDefaults.load().default_limit_group_id == 2


def test_a_customer_gets_their_own_group_or_the_default(
    sim: SimulatorInfo, make_customer: Any
) -> None:
    services.mirror_limit_groups()
    plain = make_customer()  # no default yet: SolusIO's own default applies
    services.set_default_limit_group(limit_group=LimitGroup.objects.get(pk=2))
    defaulted = make_customer()
    own = make_customer(limit_group=LimitGroup.objects.get(pk=3))
    deliver_all()
    assert Customer.objects.get(pk=defaulted.pk).limit_group_id == 2
    assert solusio_user(sim, plain.pk)["limit_group_id"] == 1  # type: ignore[index]
    assert solusio_user(sim, defaulted.pk)["limit_group_id"] == 2  # type: ignore[index]
    assert solusio_user(sim, own.pk)["limit_group_id"] == 3  # type: ignore[index]


def test_staff_pick_a_limit_group_through_the_api(
    sim: SimulatorInfo, make_customer: Any, admin_client: Client
) -> None:
    services.mirror_limit_groups()
    customer = make_customer()
    response = admin_client.patch(
        f"/api/v1/customers/{customer.pk}/",
        {"limit_group": 3},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["limit_group"] == 3
    deliver_all()
    assert solusio_user(sim, customer.pk)["limit_group_id"] == 3  # type: ignore[index]
    bad = admin_client.patch(
        f"/api/v1/customers/{customer.pk}/", {"limit_group": 99}, content_type="application/json"
    )
    assert bad.status_code == 400


def test_plans_are_mirrored_compared_and_pushed(sim: SimulatorInfo) -> None:
    Plan.objects.create(id=1, name="old name", tokens_per_hour=8, tokens_per_month=5500)
    Plan.objects.create(id=99, name="Retired", tokens_per_hour=1, tokens_per_month=100)

    plan_sync.mirror_plans()

    one = Plan.objects.get(pk=1)
    assert (one.name, one.tokens_per_hour, one.solusio_tokens_per_hour) == (
        "1 Core, 1 GB RAM",
        8,  # the price book is ours: mirroring never overwrites it
        7,
    )
    assert Plan.objects.get(pk=2).tokens_per_hour == 14  # new: starts at SolusIO's price
    assert [str(d) for d in plan_sync.disagreements()] == [
        "plan 1 '1 Core, 1 GB RAM': SolusIO has 7/h 5000/month, the price book 8/h 5500/month",
        "plan 99 'Retired' is not in SolusIO",
    ]

    plan_sync.push_plan_prices(plan_ids=[1])

    assert [c["path"] for c in sim.control.calls(method="PUT")] == ["/plans/1"]
    remote = sim.control.simulator.state.plans[1]  # type: ignore[union-attr]
    assert (remote["tokens_per_hour"], remote["tokens_per_month"]) == (8, 5500)
    assert Plan.objects.get(pk=1).agrees_with_solusio is True
    assert [d.plan_id for d in plan_sync.disagreements()] == [99]


def test_plans_command_mirrors_and_pushes(sim: SimulatorInfo) -> None:
    Plan.objects.create(id=2, name="x", tokens_per_hour=15, tokens_per_month=10000)
    out = StringIO()
    call_command("solusio_plans", stdout=out)
    assert "SolusIO has 14/h 10000/month, the price book 15/h 10000/month" in out.getvalue()
    out = StringIO()
    call_command("solusio_plans", "--push", stdout=out)
    assert "pushed the price book's prices of 7 plans" in out.getvalue()
    assert "SolusIO and the price book agree" in out.getvalue()
    assert sim.control.simulator.state.plans[2]["tokens_per_hour"] == 15  # type: ignore[union-attr]


def test_plan_admin_shows_disagreement_mirrors_and_pushes(
    sim: SimulatorInfo, admin_client: Client
) -> None:
    changelist = reverse("admin:pricing_plan_changelist")
    response = admin_client.post(reverse("admin:pricing_plan_mirror"))
    assert response.status_code == 302
    Plan.objects.filter(pk=3).update(tokens_per_hour=22)
    body = admin_client.get(changelist).content.decode()
    assert "column-agrees_with_solusio" in body
    assert "21 / 15000" in body
    response = admin_client.post(
        changelist, {"action": "push_prices", "_selected_action": [3]}, follow=True
    )
    assert "Pushed the prices of 1 plans" in response.content.decode()
    assert sim.control.simulator.state.plans[3]["tokens_per_hour"] == 22  # type: ignore[union-attr]
    assert admin_client.get(reverse("admin:pricing_plan_change", args=[3])).status_code == 200


def test_limit_group_admin_refreshes_and_the_default_is_editable(
    sim: SimulatorInfo, admin_client: Client
) -> None:
    response = admin_client.post(reverse("admin:users_limitgroup_mirror"), follow=True)
    assert "Mirrored 3 limit groups" in response.content.decode()
    assert "Refresh from SolusIO" in response.content.decode()
    change = reverse("admin:users_solusiodefaults_change", args=[1])
    assert admin_client.get(reverse("admin:users_solusiodefaults_changelist")).status_code == 302
    response = admin_client.post(change, {"default_limit_group": 3})
    assert response.status_code == 302
    assert SolusioDefaults.load().default_limit_group_id == 3
