"""Staff REST API for prices: /api/v1/currencies, discounts, tax-rules, plans,
pricing-settings and the OpenAPI schema (DESIGN §8)."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from pricing.models import Currency, Discount, Plan, PricingSettings, TaxRule
from pricing.tests.api_helpers import (
    assert_field_error,
    body,
    make_user,
    staff_client,
    token_client,
    unit_cost,
)
from users.models import Customer

pytestmark = pytest.mark.django_db

LIST_URLS = [
    "/api/v1/currencies/",
    "/api/v1/discounts/",
    "/api/v1/tax-rules/",
    "/api/v1/plans/",
    "/api/v1/pricing-settings/",
    "/api/v1/customers/",
]
PRICING_MODELS = (Currency, Discount, TaxRule, Plan, PricingSettings)


@pytest.fixture
def api() -> APIClient:
    """Staff with every permission on the pricing models."""
    return staff_client(*PRICING_MODELS)


# --- Authentication and permissions --------------------------------------------------


@pytest.mark.parametrize("url", LIST_URLS)
def test_without_a_token_the_answer_is_401_in_the_message_errors_shape(url: str) -> None:
    response = APIClient().get(url)
    assert response.status_code == 401
    assert body(response) == {
        "message": "Authentication credentials were not provided.",
        "errors": {},
    }
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_is_401() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get("/api/v1/currencies/")
    assert response.status_code == 401
    assert body(response) == {"message": "Invalid token.", "errors": {}}


@pytest.mark.parametrize("url", LIST_URLS)
def test_a_non_staff_user_is_403_even_with_model_permissions(url: str) -> None:
    user = make_user("customer-side", is_staff=False, models=(*PRICING_MODELS, Customer))
    response = token_client(user).get(url)
    assert response.status_code == 403
    assert body(response) == {
        "message": "You do not have permission to perform this action.",
        "errors": {},
    }


@pytest.mark.parametrize("url", LIST_URLS)
def test_staff_without_the_model_permission_is_403(url: str) -> None:
    response = token_client(make_user("bare-staff")).get(url)
    assert response.status_code == 403
    assert set(body(response)) == {"message", "errors"}


def test_view_permission_reads_but_does_not_write(usd: Currency) -> None:
    client = staff_client(Currency, actions=("view",))
    assert client.get("/api/v1/currencies/").status_code == 200
    assert client.get("/api/v1/currencies/USD/").status_code == 200
    assert client.patch("/api/v1/currencies/USD/", {"decimals": 3}).status_code == 403
    assert client.delete("/api/v1/currencies/USD/").status_code == 403
    usd.refresh_from_db()
    assert usd.decimals == 2


def test_pricing_settings_need_change_permission_to_write() -> None:
    client = staff_client(PricingSettings, actions=("view",))
    assert client.get("/api/v1/pricing-settings/").status_code == 200
    assert client.put("/api/v1/pricing-settings/", {"taxes_compound": True}).status_code == 403


# --- Currencies ----------------------------------------------------------------------


def test_currency_crud_by_code(api: APIClient) -> None:
    created = api.post(
        "/api/v1/currencies/",
        {
            "code": "chf",
            "token_price": "0.00088",
            "display_prefix": "CHF ",
            "display_suffix": "",
            "thousands_separator": "'",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert body(created) == {
        "code": "CHF",
        "token_price": "0.0008800000",  # a string: exact, never a float
        "display_prefix": "CHF ",  # the space is part of the display
        "display_suffix": "",
        "decimals": 2,
        "thousands_separator": "'",
        "decimals_separator": ".",
    }
    assert Currency.objects.get(code="CHF").token_price == Decimal("0.00088")

    listed = body(api.get("/api/v1/currencies/"))
    assert listed["count"] == 1
    assert [c["code"] for c in listed["results"]] == ["CHF"]
    assert body(api.get("/api/v1/currencies/chf/"))["code"] == "CHF"

    updated = api.patch(
        "/api/v1/currencies/CHF/",
        {"token_price": "0.00089", "code": "XXX", "display_suffix": " CHF"},
        format="json",
    )
    assert updated.status_code == 200, updated.content
    assert body(updated)["code"] == "CHF"  # the key is fixed once created
    assert body(updated)["display_suffix"] == " CHF"
    assert not Currency.objects.filter(code="XXX").exists()

    replaced = api.put(
        "/api/v1/currencies/CHF/",
        {"token_price": "0.0009", "decimals": 0, "decimals_separator": ","},
        format="json",
    )
    assert replaced.status_code == 200, replaced.content
    chf = Currency.objects.get(code="CHF")
    assert (chf.token_price, chf.decimals, chf.decimals_separator) == (Decimal("0.0009"), 0, ",")

    assert api.delete("/api/v1/currencies/CHF/").status_code == 204
    assert not Currency.objects.exists()
    assert api.get("/api/v1/currencies/CHF/").status_code == 404


def test_a_currency_in_use_cannot_be_deleted(api: APIClient, gbp_customer: Customer) -> None:
    response = api.delete("/api/v1/currencies/GBP/")
    assert response.status_code == 409
    assert body(response)["message"] == ("GBP is still used by 1 customers; reassign them first.")
    assert Currency.objects.filter(code="GBP").exists()


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"token_price": "0"}, "token_price", "Must be greater than 0."),
        ({"token_price": "-0.001"}, "token_price", "Must be greater than 0."),
        ({"token_price": "abc"}, "token_price", "A valid number is required."),
        (
            {"token_price": "0.00000000001"},
            "token_price",
            "Ensure that there are no more than 10 decimal places.",
        ),
        ({"code": "US"}, "code", "Use the ISO 4217 code, e.g. USD."),
        ({"code": "U5D"}, "code", "Use the ISO 4217 code, e.g. USD."),
        ({"code": "usd"}, "code", "A currency with this code already exists."),
        ({"decimals": 5}, "decimals", "Ensure this value is less than or equal to 4."),
        (
            {"thousands_separator": ".", "decimals_separator": "."},
            "decimals_separator",
            "The thousands and decimals separators must differ.",
        ),
        ({"decimals_separator": ","}, "decimals_separator", None),
        ({"decimals_separator": ""}, "decimals_separator", "This field may not be blank."),
    ],
)
def test_currency_validation_names_the_field(
    api: APIClient, usd: Currency, payload: dict, field: str, message: str | None
) -> None:
    data = {"code": "EUR", "token_price": "0.00091", **payload}
    response = api.post("/api/v1/currencies/", data, format="json")
    if message is None:  # "," collides with the default thousands separator
        message = "The thousands and decimals separators must differ."
    assert_field_error(response, field, message)
    assert list(Currency.objects.values_list("code", flat=True)) == ["USD"]


def test_a_partial_update_is_validated_against_the_stored_values(
    api: APIClient, usd: Currency
) -> None:
    # Stored thousands separator is ","; making the decimals separator "," too must fail.
    response = api.patch("/api/v1/currencies/USD/", {"decimals_separator": ","})
    assert response.status_code == 400
    assert list(body(response)["errors"]) == ["decimals_separator"]


# --- Discounts -----------------------------------------------------------------------


def test_discount_crud(api: APIClient) -> None:
    created = api.post(
        "/api/v1/discounts/",
        {
            "name": "Spring promotion",
            "description": "20% off in April",
            "multiplier": "0.8",
            "valid_from": "2026-04-01T00:00:00Z",
            "valid_until": "2026-05-01T00:00:00Z",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    data = body(created)
    assert data["multiplier"] == "0.800000"
    assert data["valid_from"] == "2026-04-01T00:00:00Z"
    url = f"/api/v1/discounts/{data['id']}/"

    assert body(api.get(url))["name"] == "Spring promotion"
    assert body(api.get("/api/v1/discounts/"))["count"] == 1
    patched = api.patch(url, {"multiplier": "1", "valid_from": None}, format="json")
    assert patched.status_code == 200, patched.content
    discount = Discount.objects.get()
    assert (discount.multiplier, discount.valid_from) == (Decimal(1), None)
    assert api.delete(url).status_code == 204
    assert not Discount.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"multiplier": "0"}, "multiplier", "Must be greater than 0."),
        ({"multiplier": "1.01"}, "multiplier", "Ensure this value is less than or equal to 1."),
        ({"multiplier": "-0.5"}, "multiplier", "Must be greater than 0."),
        ({"name": ""}, "name", "This field may not be blank."),
        (
            {"valid_from": "2026-05-01T00:00:00Z", "valid_until": "2026-05-01T00:00:00Z"},
            "valid_until",
            "Must be after valid from.",
        ),
    ],
)
def test_discount_validation_names_the_field(
    api: APIClient, payload: dict, field: str, message: str
) -> None:
    response = api.post(
        "/api/v1/discounts/", {"name": "D", "multiplier": "0.9", **payload}, format="json"
    )
    assert_field_error(response, field, message)
    assert not Discount.objects.exists()


def test_discount_validity_is_checked_against_the_stored_start(api: APIClient) -> None:
    discount = Discount.objects.create(
        name="D", multiplier=Decimal("0.9"), valid_from="2026-04-01T00:00:00Z"
    )
    response = api.patch(
        f"/api/v1/discounts/{discount.pk}/", {"valid_until": "2026-03-01T00:00:00Z"}
    )
    assert response.status_code == 400
    assert body(response)["errors"] == {"valid_until": ["Must be after valid from."]}


# --- Tax rules -----------------------------------------------------------------------


COUNTRY_CODE = "Use a 2-letter ISO code."


def test_tax_rule_crud_and_country_filter(api: APIClient) -> None:
    created = api.post(
        "/api/v1/tax-rules/",
        {"label": "City Tax", "rate": "6", "country": "gb", "region": "London", "order": 1},
        format="json",
    )
    assert created.status_code == 201, created.content
    data = body(created)
    assert (data["country"], data["rate"]) == ("GB", "6.0000")
    api.post("/api/v1/tax-rules/", {"label": "VAT", "rate": "19", "country": "DE"})
    api.post("/api/v1/tax-rules/", {"label": "Global", "rate": "1"})

    def labels(query: str) -> list[str]:
        return [r["label"] for r in body(api.get(f"/api/v1/tax-rules/{query}"))["results"]]

    assert sorted(labels("")) == ["City Tax", "Global", "VAT"]
    assert labels("?country=gb") == ["City Tax"]
    assert labels("?country=") == ["Global"]
    assert_field_error(api.get("/api/v1/tax-rules/?country=gbr"), "country", COUNTRY_CODE)
    assert_field_error(api.get("/api/v1/tax-rules/?country=g1"), "country", COUNTRY_CODE)

    url = f"/api/v1/tax-rules/{data['id']}/"
    assert api.patch(url, {"rate": "6.5"}).status_code == 200
    assert TaxRule.objects.get(pk=data["id"]).rate == Decimal("6.5")
    assert api.delete(url).status_code == 204
    assert TaxRule.objects.count() == 2


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"rate": "100.0001"}, "rate", "Ensure this value is less than or equal to 100."),
        ({"rate": "-1"}, "rate", "Ensure this value is greater than or equal to 0."),
        ({"country": "GBR"}, "country", "Use the ISO 3166-1 alpha-2 code, e.g. GB."),
        ({"country": "g1"}, "country", "Use the ISO 3166-1 alpha-2 code, e.g. GB."),
        ({"country": "", "region": "London"}, "country", "A region needs its country."),
        ({"order": -1}, "order", "Ensure this value is greater than or equal to 0."),
    ],
)
def test_tax_rule_validation_names_the_field(
    api: APIClient, payload: dict, field: str, message: str
) -> None:
    response = api.post("/api/v1/tax-rules/", {"label": "T", "rate": "5", **payload}, format="json")
    assert_field_error(response, field, message)
    assert not TaxRule.objects.exists()


def test_removing_the_country_of_a_regional_rule_is_refused(
    api: APIClient, seed_taxes: list[TaxRule]
) -> None:
    city = seed_taxes[0]
    response = api.patch(f"/api/v1/tax-rules/{city.pk}/", {"country": ""})
    assert response.status_code == 400
    assert body(response)["errors"] == {"country": ["A region needs its country."]}


# --- Plans ---------------------------------------------------------------------------


def test_plan_crud_with_the_solusio_id_and_the_price_book(api: APIClient) -> None:
    created = api.post(
        "/api/v1/plans/",
        {"id": 7, "name": "1 Core, 1 GB RAM", "tokens_per_hour": 7, "tokens_per_month": 5000},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert body(created) == {
        "id": 7,
        "name": "1 Core, 1 GB RAM",
        "tokens_per_hour": 7,
        "tokens_per_month": 5000,
        "aggregated_tokens_per_month": 5208,
        "suggested_tokens_per_month": 5000,
    }
    duplicate = api.post("/api/v1/plans/", {"id": 7, "name": "again"}, format="json")
    assert body(duplicate)["errors"] == {"id": ["A plan with this id already exists."]}

    updated = api.put(
        "/api/v1/plans/7/",
        {"id": 8, "name": "1 Core, 2 GB RAM", "tokens_per_hour": 14, "tokens_per_month": 10000},
        format="json",
    )
    assert updated.status_code == 200, updated.content
    assert body(updated)["id"] == 7  # SolusIO's id does not change
    assert body(updated)["aggregated_tokens_per_month"] == 10416
    assert list(Plan.objects.values_list("id", flat=True)) == [7]
    assert api.delete("/api/v1/plans/7/").status_code == 204
    assert not Plan.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"tokens_per_hour": -1}, "tokens_per_hour"),
        ({"tokens_per_month": "seven"}, "tokens_per_month"),
        ({"id": None}, "id"),
        ({"name": ""}, "name"),
    ],
)
def test_plan_validation_names_the_field(api: APIClient, payload: dict, field: str) -> None:
    response = api.post("/api/v1/plans/", {"id": 1, "name": "P", **payload}, format="json")
    assert response.status_code == 400
    assert list(body(response)["errors"]) == [field]


# --- Pricing settings ----------------------------------------------------------------


def test_pricing_settings_singleton(api: APIClient) -> None:
    assert body(api.get("/api/v1/pricing-settings/")) == {"taxes_compound": False}
    assert body(api.put("/api/v1/pricing-settings/", {"taxes_compound": True}, format="json")) == {
        "taxes_compound": True
    }
    assert PricingSettings.load().taxes_compound is True
    patched = api.patch("/api/v1/pricing-settings/", {"taxes_compound": False}, format="json")
    assert body(patched) == {"taxes_compound": False}
    assert PricingSettings.objects.count() == 1
    invalid = api.put("/api/v1/pricing-settings/", {"taxes_compound": "maybe"}, format="json")
    assert invalid.status_code == 400
    assert list(body(invalid)["errors"]) == ["taxes_compound"]
    assert api.delete("/api/v1/pricing-settings/").status_code == 405


# --- Changes through the API reach GetTokenPricing at once ---------------------------


def test_api_changes_invalidate_the_cached_get_token_pricing_answer(
    api: APIClient, gbp_customer: Customer, django_capture_on_commit_callbacks
) -> None:
    assert unit_cost(1) == Decimal("0.0008114406")  # now cached
    city, state = TaxRule.objects.order_by("order")

    def change(method: str, url: str, data: dict) -> None:
        # Invalidation runs on commit; the test transaction never commits, so run it here.
        with django_capture_on_commit_callbacks(execute=True):
            response = getattr(api, method)(url, data, format="json")
        assert response.status_code in (200, 201), response.content

    change("patch", f"/api/v1/tax-rules/{city.pk}/", {"rate": "10"})
    assert unit_cost(1) == Decimal("0.00079") * Decimal("0.95") * Decimal("1.10") * Decimal("1.02")

    discount = gbp_customer.discounts.get()
    change("patch", f"/api/v1/discounts/{discount.pk}/", {"multiplier": "0.9"})
    assert unit_cost(1) == Decimal("0.00079") * Decimal("0.9") * Decimal("1.10") * Decimal("1.02")

    change("patch", "/api/v1/currencies/GBP/", {"token_price": "0.001"})
    assert unit_cost(1) == Decimal("0.001") * Decimal("0.9") * Decimal("1.10") * Decimal("1.02")

    change("put", "/api/v1/pricing-settings/", {"taxes_compound": False})
    assert unit_cost(1) == Decimal("0.001") * Decimal("0.9") * Decimal("1.12")

    change("post", "/api/v1/tax-rules/", {"label": "Extra", "rate": "1", "country": "GB"})
    assert unit_cost(1) == Decimal("0.001") * Decimal("0.9") * Decimal("1.13")

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/tax-rules/{state.pk}/").status_code == 204
    assert unit_cost(1) == Decimal("0.001") * Decimal("0.9") * Decimal("1.11")


# --- OpenAPI schema ------------------------------------------------------------------


def test_the_schema_lists_every_staff_api_path() -> None:
    client = staff_client(Currency, actions=("view",))  # any one permission reads it
    response = client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = body(response)["paths"]
    assert set(paths) >= {
        "/api/v1/currencies/",
        "/api/v1/currencies/{code}/",
        "/api/v1/discounts/",
        "/api/v1/discounts/{id}/",
        "/api/v1/tax-rules/",
        "/api/v1/tax-rules/{id}/",
        "/api/v1/plans/",
        "/api/v1/plans/{id}/",
        "/api/v1/pricing-settings/",
        "/api/v1/customers/",
        "/api/v1/customers/{id}/",
        "/api/v1/customers/{id}/token-pricing/",
    }
    assert set(paths["/api/v1/pricing-settings/"]) == {"get", "put", "patch"}
    preview = paths["/api/v1/customers/{id}/token-pricing/"]["get"]["responses"]["200"]
    assert preview["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenPricingAnswer"
    }


def test_the_schema_generates_without_warnings(tmp_path) -> None:
    # --fail-on-warn turns every drf-spectacular warning or error into a failure.
    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3")


def test_the_schema_is_for_staff_only() -> None:
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/schema/").status_code == 401
