"""Customer admin writes go through the services, so SolusIO hears of them; staff see the
sync state and last error at a glance and retry parked changes."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from pricing.models import Currency
from solusio.testing import SimulatorInfo
from users import services
from users.models import Customer, SyncRecord, SyncRecordState
from users.tests.conftest import deliver_all, solusio_user

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:users_customer_changelist")


def form(customer: Customer | None = None, **changes: Any) -> dict[str, Any]:
    data = {
        "email": "new@example.com",
        "name": "",
        "status": "active",
        "currency": "",
        "country": "",
        "region": "",
        "discounts": [],
        "limit_group": "",
    }
    if customer is not None:
        data.update(
            email=customer.email,
            name=customer.name,
            status=customer.status,
            currency=customer.currency_id,
        )
    data.update(changes)
    return data


def test_add_edit_and_delete_in_the_admin_reach_solusio(
    sim: SimulatorInfo, admin_client: Client, usd: Currency
) -> None:
    response = admin_client.post(reverse("admin:users_customer_add"), form(currency=usd.pk))
    assert response.status_code == 302, response.content.decode()[:2000]
    customer = Customer.objects.get(email="new@example.com")
    deliver_all()
    assert solusio_user(sim, customer.pk)["status"] == "active"  # type: ignore[index]

    response = admin_client.post(
        reverse("admin:users_customer_change", args=[customer.pk]),
        form(customer, status="suspended"),
    )
    assert response.status_code == 302
    last = SyncRecord.objects.filter(customer_id=customer.pk).last()
    assert last is not None
    assert last.reason == "edited in admin"
    deliver_all()
    assert solusio_user(sim, customer.pk)["status"] == "suspended"  # type: ignore[index]

    response = admin_client.post(
        reverse("admin:users_customer_delete", args=[customer.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    deliver_all()
    assert solusio_user(sim, customer.pk) is None


def test_the_list_shows_sync_state_and_error_and_parked_changes_can_be_retried(
    sim: SimulatorInfo, admin_client: Client, make_customer: Any
) -> None:
    customer = make_customer()
    sim.control.fail_next("error", 1, method="POST", path="/users", status=422)
    deliver_all()
    body = admin_client.get(CHANGELIST).content.decode()
    assert "column-sync_state" in body
    assert "Parked (needs staff)" in body
    assert "HTTP 422" in body
    page = admin_client.get(reverse("admin:users_customer_change", args=[customer.pk]))
    assert "HTTP 422" in page.content.decode()
    assert admin_client.get(CHANGELIST, {"solusio__state": "parked"}).status_code == 200

    records = reverse("admin:users_syncrecord_changelist")
    assert "HTTP 422" in admin_client.get(records).content.decode()
    parked = SyncRecord.objects.get(customer_id=customer.pk)
    response = admin_client.post(
        records, {"action": "retry", "_selected_action": [parked.pk]}, follow=True
    )
    assert "Retrying 1 parked changes" in response.content.decode()
    deliver_all()
    assert SyncRecord.objects.get(pk=parked.pk).state == SyncRecordState.DONE
    body = admin_client.get(CHANGELIST).content.decode()
    assert "In sync (user " in body


def test_resync_action_queues_the_whole_state_again(
    sim: SimulatorInfo, admin_client: Client, make_customer: Any
) -> None:
    customer = make_customer()
    deliver_all()
    admin_client.post(CHANGELIST, {"action": "resync", "_selected_action": [customer.pk]})
    assert SyncRecord.objects.filter(customer_id=customer.pk).count() == 2
    deliver_all()
    services.change_customer_status(customer_id=customer.pk, status="locked", reason="x")
    deliver_all()
    assert solusio_user(sim, customer.pk)["status"] == "locked"  # type: ignore[index]
