"""GetTokenPricing over the real Django stack (DESIGN §3)."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from pricing.models import Currency, Discount, PricingSettings, TaxRule
from users.models import Customer

TOKEN = "test-pricing-token"
URL = "/api/solusio"


def decode(response) -> dict:  # type: ignore[no-untyped-def]
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content, parse_float=Decimal)


def ask(client: Client, path: str = URL, **fields: object) -> tuple[int, dict]:
    """POST form-encoded, as SolusIO does."""
    fields = {"token": TOKEN, "action": "GetTokenPricing", **fields}
    body = "&".join(f"{k}={v}" for k, v in fields.items())
    response = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
    return response.status_code, decode(response)


def ask_json(client: Client, payload: object) -> tuple[int, dict]:
    response = client.post(URL, data=json.dumps(payload), content_type="application/json")
    return response.status_code, decode(response)


SEED_ANSWER = {
    "base_token_unit_cost": Decimal("0.00079"),
    # 0.00079 × 0.95 × 1.06 × 1.02, exact
    "user_token_unit_cost": Decimal("0.0008114406"),
    "currency": {
        "code": "GBP",
        "display_prefix": "£",
        "display_suffix": " GBP",
        "decimals": 2,
        "thousands_separator": ",",
        "decimals_separator": ".",
    },
    "discounts": [
        {
            "name": "Special Client Group Discount",
            "description": "5% Recurring Discount",
            "multipler": Decimal("0.95"),
        }
    ],
    "taxes": {
        "compound": True,
        "rates": [{"label": "City Tax", "rate": 6}, {"label": "State Tax", "rate": 2}],
    },
}


def test_seed_call_for_the_gbp_customer_returns_the_formula(
    client: Client, gbp_customer: Customer
) -> None:
    assert ask(client, userid=1) == (200, SEED_ANSWER)


def test_trailing_slash_json_body_and_multipart_all_answer_the_same(
    client: Client, gbp_customer: Customer
) -> None:
    assert ask(client, path=URL + "/", userid=1) == (200, SEED_ANSWER)
    payload = {"token": TOKEN, "action": "GetTokenPricing", "userid": 1}
    assert ask_json(client, payload) == (200, SEED_ANSWER)
    assert ask_json(client, {**payload, "userid": "1"}) == (200, SEED_ANSWER)
    response = client.post(URL, data=payload)  # multipart/form-data
    assert (response.status_code, decode(response)) == (200, SEED_ANSWER)


def test_numbers_are_plain_json_numbers_without_float_noise(
    client: Client, gbp_customer: Customer
) -> None:
    raw = client.post(
        URL,
        data=f"token={TOKEN}&action=GetTokenPricing&userid=1",
        content_type="application/x-www-form-urlencoded",
    ).content.decode()
    assert '"base_token_unit_cost":0.00079,' in raw
    assert '"user_token_unit_cost":0.0008114406,' in raw
    assert '"multipler":0.95}' in raw
    assert '"rates":[{"label":"City Tax","rate":6},{"label":"State Tax","rate":2}]' in raw


def test_design_worked_numbers_compound_and_simple(
    client: Client, usd: Currency, django_capture_on_commit_callbacks
) -> None:
    discount = Discount.objects.create(name="Loyal customer", multiplier=Decimal("0.95"))
    TaxRule.objects.create(label="City Tax", rate=6, country="US", region="NY", order=1)
    TaxRule.objects.create(label="State Tax", rate=2, country="US", region="NY", order=2)
    customer = Customer.objects.create(
        id=7, email="a@example.com", currency=usd, country="US", region="ny"
    )
    customer.discounts.add(discount)
    PricingSettings.objects.update_or_create(pk=1, defaults={"taxes_compound": True})
    assert ask(client, userid=7)[1]["user_token_unit_cost"] == Decimal("0.00102714")
    with django_capture_on_commit_callbacks(execute=True):
        PricingSettings.objects.update_or_create(pk=1, defaults={"taxes_compound": False})
    _, body = ask(client, userid=7)
    assert body["user_token_unit_cost"] == Decimal("0.001026")
    assert body["taxes"] == {
        "compound": False,
        "rates": [{"label": "City Tax", "rate": 6}, {"label": "State Tax", "rate": 2}],
    }


def test_customer_without_discounts_or_taxes_gets_empty_lists(
    client: Client, usd: Currency
) -> None:
    Customer.objects.create(id=3, email="b@example.com", currency=usd, country="US")
    status, body = ask(client, userid=3)
    assert status == 200
    assert body["user_token_unit_cost"] == Decimal("0.001")
    assert body["discounts"] == []
    assert body["taxes"] == {"compound": False, "rates": []}


def test_taxes_follow_country_and_region(client: Client, usd: Currency) -> None:
    TaxRule.objects.create(label="Everywhere", rate=1, order=0)
    TaxRule.objects.create(label="Germany", rate=19, country="DE", order=1)
    TaxRule.objects.create(label="Bavaria", rate=3, country="DE", region="Bavaria", order=2)
    TaxRule.objects.create(label="Saxony", rate=4, country="DE", region="Saxony", order=3)
    Customer.objects.create(
        id=10, email="de@example.com", currency=usd, country="DE", region="bavaria"
    )
    Customer.objects.create(id=11, email="fr@example.com", currency=usd, country="FR")
    labels = [r["label"] for r in ask(client, userid=10)[1]["taxes"]["rates"]]
    assert labels == ["Everywhere", "Germany", "Bavaria"]
    assert [r["label"] for r in ask(client, userid=11)[1]["taxes"]["rates"]] == ["Everywhere"]


def test_billing_exempt_customer_costs_nothing(client: Client, gbp_customer: Customer) -> None:
    gbp_customer.billing_exempt = True
    gbp_customer.save()  # before any answer is cached
    status, body = ask(client, userid=1)
    assert status == 200
    assert body["user_token_unit_cost"] == 0
    assert body["base_token_unit_cost"] == Decimal("0.00079")


def test_discount_outside_its_validity_does_not_apply(
    client: Client, gbp_customer: Customer
) -> None:
    expired = Discount.objects.create(
        name="Launch offer",
        multiplier=Decimal("0.5"),
        valid_until=timezone.now() - timedelta(days=1),
    )
    future = Discount.objects.create(
        name="Next year",
        multiplier=Decimal("0.5"),
        valid_from=timezone.now() + timedelta(days=1),
    )
    gbp_customer.discounts.add(expired, future)
    assert ask(client, userid=1) == (200, SEED_ANSWER)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("token=test-pricing-token&action=GetTokenPricing", 400, "Missing userid."),
        ("token=test-pricing-token&action=GetTokenPricing&userid=", 400, "Missing userid."),
        (
            "token=test-pricing-token&action=GetTokenPricing&userid=abc",
            400,
            "userid must be a positive integer.",
        ),
        (
            "token=test-pricing-token&action=GetTokenPricing&userid=1.5",
            400,
            "userid must be a positive integer.",
        ),
        (
            "token=test-pricing-token&action=GetTokenPricing&userid=-1",
            400,
            "userid must be a positive integer.",
        ),
        (
            "token=test-pricing-token&action=GetTokenPricing&userid=0",
            400,
            "userid must be a positive integer.",
        ),
        (
            "token=test-pricing-token&action=GetTokenPricing&userid=%EF%BC%91",
            400,
            "userid must be a positive integer.",
        ),
        (
            "token=test-pricing-token&action=GetTokenPricing&userid=" + "9" * 19,
            400,
            "userid is out of range.",
        ),
        (
            "token=test-pricing-token&action=GetTokenPricing&userid=" + "9" * 400,
            400,
            "userid is out of range.",
        ),
        (
            "token=test-pricing-token&action=GetTokenPricing&userid=424242",
            404,
            "No customer with userid 424242.",
        ),
        ("action=GetTokenPricing&userid=1", 401, "Missing token."),
        ("token=&action=GetTokenPricing&userid=1", 401, "Missing token."),
        ("token=wrong&action=GetTokenPricing&userid=1", 403, "Invalid token."),
        ("token=test-pricing-token%00&action=GetTokenPricing&userid=1", 403, "Invalid token."),
        (
            "token=test-pricing-token&userid=1",
            400,
            "Unknown action: expected action=GetTokenPricing.",
        ),
        (
            "token=test-pricing-token&action=GetInvoices&userid=1",
            400,
            "Unknown action: expected action=GetTokenPricing.",
        ),
        ("", 400, "Empty request body: send action, userid and token."),
        ("   ", 400, "Empty request body: send action, userid and token."),
    ],
)
def test_bad_form_input_gets_a_stable_json_error(
    client: Client, gbp_customer: Customer, body: str, status: int, message: str
) -> None:
    response = client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
    assert (response.status_code, decode(response)) == (
        status,
        {"result": "error", "message": message},
    )


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (
            {"token": TOKEN, "action": "GetTokenPricing", "userid": 1.0},
            400,
            "userid must be an integer.",
        ),
        (
            {"token": TOKEN, "action": "GetTokenPricing", "userid": True},
            400,
            "userid must be an integer.",
        ),
        (
            {"token": TOKEN, "action": "GetTokenPricing", "userid": [1]},
            400,
            "userid must be an integer.",
        ),
        ({"token": TOKEN, "action": "GetTokenPricing", "userid": None}, 400, "Missing userid."),
        (
            {"token": TOKEN, "action": "GetTokenPricing", "userid": -5},
            400,
            "userid must be a positive integer.",
        ),
        (
            {"token": TOKEN, "action": "GetTokenPricing", "userid": 10**30},
            400,
            "userid is out of range.",
        ),
        ({"token": 12345, "action": "GetTokenPricing", "userid": 1}, 403, "Invalid token."),
        (
            {"token": TOKEN, "action": ["GetTokenPricing"], "userid": 1},
            400,
            "Unknown action: expected action=GetTokenPricing.",
        ),
        ([1, 2, 3], 400, "The JSON body must be an object."),
        ("GetTokenPricing", 400, "The JSON body must be an object."),
    ],
)
def test_json_with_wrong_types_gets_a_stable_json_error(
    client: Client, gbp_customer: Customer, payload: object, status: int, message: str
) -> None:
    assert ask_json(client, payload) == (status, {"result": "error", "message": message})


@pytest.mark.parametrize(
    "data",
    [b'{"userid": 1', b"[" * 2000, b'{"":' * 1000],  # cut short; nested past json's limit
)
def test_malformed_json_is_a_400(client: Client, gbp_customer: Customer, data: bytes) -> None:
    response = client.post(URL, data=data, content_type="application/json")
    assert (response.status_code, decode(response)) == (
        400,
        {"result": "error", "message": "Malformed JSON body."},
    )


def test_oversized_body_is_a_413(client: Client, gbp_customer: Customer) -> None:
    body = f"token={TOKEN}&action=GetTokenPricing&userid=1&pad=" + "x" * 10_000
    response = client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert decode(response) == {
        "result": "error",
        "message": "Request body larger than 4096 bytes.",
    }


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_are_a_405_json(client: Client, method: str) -> None:
    response = getattr(client, method)(URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert decode(response) == {"result": "error", "message": "Use POST."}


def test_unknown_api_path_is_json_not_html(client: Client) -> None:
    response = client.get("/api/nowhere")
    assert response.status_code == 404
    assert decode(response) == {"result": "error", "message": "Not found."}


@override_settings(PRICING_API_TOKEN="")
def test_no_token_configured_means_none_is_required(client: Client, gbp_customer: Customer) -> None:
    response = client.post(
        URL,
        data="action=GetTokenPricing&userid=1",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200


def test_unknown_extra_fields_are_ignored(client: Client, gbp_customer: Customer) -> None:
    assert ask(client, userid=1, currency="EUR", foo="bar") == (200, SEED_ANSWER)


def test_database_outage_is_a_503_not_a_500(
    client: Client, gbp_customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    def broken(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("pricing.services.token_pricing", broken)
    status, body = ask(client, userid=1)
    assert (status, body["result"]) == (503, "error")
