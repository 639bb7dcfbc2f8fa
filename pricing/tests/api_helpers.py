"""A cast of API users (anonymous, customer-side, staff with and without permissions) and
the GetTokenPricing call, shared by the staff API tests."""

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Permission, User
from django.db.models import Model
from django.test import Client
from rest_framework.test import APIClient

from bridge.api_keys import create_api_key

ACTIONS = ("view", "add", "change", "delete")


def make_user(
    username: str,
    *,
    is_staff: bool = True,
    models: Iterable[type[Model]] = (),
    actions: Iterable[str] = ACTIONS,
) -> User:
    user = User.objects.create_user(username=username, password="x", is_staff=is_staff)
    codenames = [f"{a}_{m._meta.model_name}" for m in models for a in actions]
    if codenames:
        perms = Permission.objects.filter(codename__in=codenames)
        assert perms.count() == len(codenames)
        user.user_permissions.set(perms)
    return user


def token_client(user: User) -> APIClient:
    client = APIClient()
    _, key = create_api_key(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def staff_client(*models: type[Model], actions: Iterable[str] = ACTIONS) -> APIClient:
    """A token-authenticated staff user with `actions` permissions on `models`."""
    name = "staff-" + "-".join(m._meta.model_name or "" for m in models) + "-" + "-".join(actions)
    return token_client(make_user(name[:150], models=models, actions=actions))


def body(response: Any) -> Any:
    """The JSON body with exact decimals."""
    return json.loads(response.content, parse_float=Decimal)


def assert_field_error(response: Any, field: str, message: str) -> None:
    """A 400 in the staff API's error shape, naming `field` (and only it) first."""
    assert response.status_code == 400, response.content
    data = body(response)
    assert set(data) == {"message", "errors"}
    assert data["message"] == f"{field}: {message}"
    assert list(data["errors"]) == [field]
    assert data["errors"][field][0] == message


def solusio_answer(customer_id: int) -> tuple[int, bytes]:
    """What SolusIO gets from POST /api/solusio for this customer (form-encoded)."""
    response = Client().post(
        "/api/solusio",
        data={"token": "test-pricing-token", "action": "GetTokenPricing", "userid": customer_id},
    )
    return response.status_code, response.content


def unit_cost(customer_id: int) -> Decimal:
    status, content = solusio_answer(customer_id)
    assert status == 200, content
    return json.loads(content, parse_float=Decimal)["user_token_unit_cost"]
