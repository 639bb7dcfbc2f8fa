"""Retrying parked sync records needs users.retry_syncrecord, in the admin and the API:
viewing the outbox (or being allowed to add) is not enough."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from pricing.models import Currency
from pricing.tests.api_helpers import make_user, token_client
from users import services
from users.models import Customer, SyncRecord, SyncRecordState

pytestmark = pytest.mark.django_db

RECORDS = reverse("admin:users_syncrecord_changelist")
CUSTOMERS = reverse("admin:users_customer_changelist")
VIEW_ALL = ("view", "add", "change", "delete")


@pytest.fixture
def parked(usd: Currency) -> SyncRecord:
    customer = services.create_customer(email="parked@example.com", currency=usd)
    SyncRecord.objects.filter(customer_id=customer.pk).update(
        state=SyncRecordState.PARKED, last_error="HTTP 422"
    )
    return SyncRecord.objects.get(customer_id=customer.pk)


def admin_login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def may_retry() -> User:
    user = make_user("retrier", models=[Customer, SyncRecord], actions=VIEW_ALL)
    user.user_permissions.add(Permission.objects.get(codename="retry_syncrecord"))
    return User.objects.get(pk=user.pk)  # a fresh permission cache


def may_not_retry() -> User:
    return make_user("viewer", models=[Customer, SyncRecord], actions=VIEW_ALL)


def state_of(record: SyncRecord) -> str:
    return SyncRecord.objects.get(pk=record.pk).state


def test_the_permission_exists_with_a_readable_name() -> None:
    user = may_retry()
    assert user.has_perm("users.retry_syncrecord")
    assert not may_not_retry().has_perm("users.retry_syncrecord")


def test_staff_with_the_retry_permission_retry_in_the_admin(parked: SyncRecord) -> None:
    client = admin_login(may_retry())
    page = client.get(RECORDS).content.decode()
    assert 'value="retry"' in page
    response = client.post(
        RECORDS, {"action": "retry", "_selected_action": [parked.pk]}, follow=True
    )
    assert "Retrying 1 parked changes" in response.content.decode()
    assert state_of(parked) == SyncRecordState.PENDING


def test_staff_without_it_see_no_retry_action_and_cannot_post_it(parked: SyncRecord) -> None:
    client = admin_login(may_not_retry())
    page = client.get(RECORDS)
    assert page.status_code == 200
    assert 'value="retry"' not in page.content.decode()
    response = client.post(
        RECORDS, {"action": "retry", "_selected_action": [parked.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "Retrying" not in response.content.decode()
    assert state_of(parked) == SyncRecordState.PARKED


def test_the_customer_action_needs_the_same_permission(parked: SyncRecord) -> None:
    refused = admin_login(may_not_retry())
    assert 'value="retry_parked"' not in refused.get(CUSTOMERS).content.decode()
    refused.post(CUSTOMERS, {"action": "retry_parked", "_selected_action": [parked.customer_id]})
    assert state_of(parked) == SyncRecordState.PARKED

    allowed = admin_login(may_retry())
    assert 'value="retry_parked"' in allowed.get(CUSTOMERS).content.decode()
    allowed.post(CUSTOMERS, {"action": "retry_parked", "_selected_action": [parked.customer_id]})
    assert state_of(parked) == SyncRecordState.PENDING


def test_the_api_refuses_staff_without_the_permission(parked: SyncRecord) -> None:
    url = f"/api/v1/sync-records/{parked.pk}/retry/"
    refused = token_client(may_not_retry()).post(url)
    assert refused.status_code == 403
    assert "users.retry_syncrecord" in refused.json()["message"]
    assert state_of(parked) == SyncRecordState.PARKED
    # Reading the outbox still needs only `view`.
    viewer = token_client(make_user("outbox-viewer", models=[SyncRecord], actions=["view"]))
    assert viewer.get("/api/v1/sync-records/").status_code == 200


def test_the_api_lets_staff_with_the_permission_retry(parked: SyncRecord) -> None:
    retrier = make_user("api-retrier", models=[SyncRecord], actions=["retry"])
    response = token_client(retrier).post(f"/api/v1/sync-records/{parked.pk}/retry/")
    assert (response.status_code, response.json()) == (202, {"count": 1})
    assert state_of(parked) == SyncRecordState.PENDING


def test_anonymous_and_non_staff_are_refused(parked: SyncRecord) -> None:
    url = f"/api/v1/sync-records/{parked.pk}/retry/"
    from rest_framework.test import APIClient

    assert APIClient().post(url).status_code == 401
    customer_side = make_user(
        "not-staff", is_staff=False, models=[SyncRecord], actions=["view", "retry"]
    )
    assert token_client(customer_side).post(url).status_code == 403
    assert state_of(parked) == SyncRecordState.PARKED
