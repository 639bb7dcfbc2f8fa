"""Staff REST API for customers: /api/v1/customers (DESIGN §8)."""

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from rest_framework.test import APIClient

from pricing.models import Currency, Discount, TaxRule
from pricing.tests.api_helpers import (
    assert_field_error,
    body,
    make_user,
    solusio_answer,
    staff_client,
    token_client,
    unit_cost,
)
from users.models import Customer, SyncRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return staff_client(Customer)


def set_customer_sequence(next_id: int) -> None:
    """Put the id sequence where the next auto id is `next_id` (setval is not rolled back
    with the test, so each test sets what it needs)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('users_customer', 'id'), %s, false)",
            [next_id],
        )


def customer_payload(**fields: object) -> dict[str, object]:
    return {"email": "john@example.com", "name": "John Smith", "currency": "USD", **fields}


# --- Authentication and permissions --------------------------------------------------


def test_without_a_token_the_answer_is_401(gbp_customer: Customer) -> None:
    for url in ("/api/v1/customers/", "/api/v1/customers/1/token-pricing/"):
        response = APIClient().get(url)
        assert response.status_code == 401
        assert body(response) == {
            "message": "Authentication credentials were not provided.",
            "errors": {},
        }


def test_a_non_staff_user_is_403(gbp_customer: Customer) -> None:
    client = token_client(make_user("someone", is_staff=False, models=(Customer,)))
    for url in ("/api/v1/customers/", "/api/v1/customers/1/", "/api/v1/customers/1/token-pricing/"):
        response = client.get(url)
        assert response.status_code == 403
        assert set(body(response)) == {"message", "errors"}


def test_staff_without_customer_permissions_is_403(gbp_customer: Customer) -> None:
    client = token_client(make_user("pricing-staff", models=(Currency, Discount)))
    assert client.get("/api/v1/customers/").status_code == 403
    assert client.get("/api/v1/customers/1/token-pricing/").status_code == 403
    assert client.post("/api/v1/customers/", customer_payload()).status_code == 403


def test_view_permission_cannot_create(usd: Currency) -> None:
    client = staff_client(Customer, actions=("view",))
    assert client.get("/api/v1/customers/").status_code == 200
    assert client.post("/api/v1/customers/", customer_payload(), format="json").status_code == 403
    assert not Customer.objects.exists()


# --- CRUD ----------------------------------------------------------------------------


def test_customer_crud(api: APIClient, usd: Currency, gbp: Currency, loyalty: Discount) -> None:
    created = api.post(
        "/api/v1/customers/",
        customer_payload(id=17, currency="usd", country="us", discounts=[loyalty.pk]),
        format="json",
    )
    assert created.status_code == 201, created.content
    data = body(created)
    assert data == {
        "id": 17,
        "email": "john@example.com",
        "name": "John Smith",
        "currency": "USD",
        "country": "US",
        "region": "",
        "billing_exempt": False,
        "status": "active",
        "discounts": [loyalty.pk],
        "limit_group": None,  # no default limit group chosen yet
        "company_name": "",
        "billing_address": "",
        "vat_id": "",
        "tax_exemption_reason": "",
        "language": "en",  # settings.LANGUAGE_CODE
        "solusio_user_id": None,
        "sync_state": "pending",  # the SolusIO user is queued (users.sync)
        "sync_error": "",
        "created_at": data["created_at"],
        "updated_at": data["updated_at"],
    }
    assert body(api.get("/api/v1/customers/17/"))["email"] == "john@example.com"

    patched = api.patch(
        "/api/v1/customers/17/",
        {
            "id": 99,
            "currency": "GBP",
            "status": "suspended",
            "discounts": [],
            "company_name": "Smith Ltd",
            "billing_address": "1 High Street\nLeeds",
            "vat_id": "GB123456789",
        },
        format="json",
    )
    assert patched.status_code == 200, patched.content
    customer = Customer.objects.get()
    assert customer.pk == 17  # the billing user id never changes
    assert (customer.currency_id, customer.status) == ("GBP", "suspended")
    assert (customer.company_name, customer.billing_address, customer.vat_id) == (
        "Smith Ltd",
        "1 High Street\nLeeds",
        "GB123456789",
    )
    assert list(customer.discounts.all()) == []

    replaced = api.put(
        "/api/v1/customers/17/",
        {"email": "j.smith@example.com", "currency": "USD", "billing_exempt": True},
        format="json",
    )
    assert replaced.status_code == 200, replaced.content
    customer.refresh_from_db()
    assert (customer.email, customer.billing_exempt) == ("j.smith@example.com", True)

    assert api.delete("/api/v1/customers/17/").status_code == 204
    assert not Customer.objects.exists()
    missing = api.get("/api/v1/customers/17/")
    assert missing.status_code == 404
    assert body(missing) == {"message": "Not found.", "errors": {}}


def test_an_explicit_id_moves_the_sequence_past_it(api: APIClient, usd: Currency) -> None:
    set_customer_sequence(500)  # without the fix, the next auto id would be 500 itself
    explicit = api.post("/api/v1/customers/", customer_payload(id=500), format="json")
    assert explicit.status_code == 201, explicit.content
    auto = api.post("/api/v1/customers/", customer_payload(email="next@example.com"), format="json")
    assert auto.status_code == 201, auto.content
    assert body(auto)["id"] == 501


def test_the_sequence_only_moves_forward(api: APIClient, usd: Currency) -> None:
    set_customer_sequence(1000)
    api.post("/api/v1/customers/", customer_payload(id=5), format="json")
    auto = api.post("/api/v1/customers/", customer_payload(email="next@example.com"), format="json")
    assert body(auto)["id"] == 1000


def test_list_filters(api: APIClient, usd: Currency, gbp_customer: Customer) -> None:
    Customer.objects.create(
        id=2, email="john@example.com", name="John", currency=usd, country="US", status="locked"
    )
    Customer.objects.create(
        id=3, email="max@example.de", name="Max Jonas", currency=usd, billing_exempt=True
    )

    def ids(query: str) -> list[int]:
        response = api.get(f"/api/v1/customers/{query}")
        assert response.status_code == 200, response.content
        return [c["id"] for c in body(response)["results"]]

    assert ids("") == [1, 2, 3]
    assert ids("?status=locked") == [2]
    assert ids("?currency=usd") == [2, 3]
    assert ids("?country=gb") == [1]
    assert ids("?billing_exempt=true") == [3]
    assert ids("?billing_exempt=false") == [1, 2]
    assert ids("?search=JOHN") == [2]
    assert ids("?search=jon") == [3]  # the name matches too
    assert ids("?search=example.co.uk") == [1]
    assert ids("?status=active&currency=USD") == [3]
    bad = api.get("/api/v1/customers/?status=gone")
    assert bad.status_code == 400
    assert list(body(bad)["errors"]) == ["status"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("/api/v1/customers/?billing_exempt=maybe", "billing_exempt", "Use true or false."),
        ("/api/v1/customers/?currency=dollar", "currency", "Use a 3-letter ISO code."),
        ("/api/v1/customers/?country=gbr", "country", "Use a 2-letter ISO code."),
        ("/api/v1/sync-records/?customer=abc", "customer", "Enter a whole number."),
        (
            "/api/v1/sync-records/?state=lost",
            "state",
            "Select a valid choice. lost is not one of the available choices.",
        ),
    ],
)
def test_a_bad_list_filter_is_a_400_naming_it(query: str, field: str, message: str) -> None:
    api = staff_client(Customer, SyncRecord, actions=["view"])
    assert_field_error(api.get(query), field, message)


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"email": "JANE@example.co.uk"}, "email", "A customer with this e-mail already exists."),
        ({"currency": "XYZ"}, "currency", "No currency with code XYZ."),
        ({"currency": None}, "currency", "This field may not be null."),
        ({"discounts": [999]}, "discounts", "No discount with id 999."),
        ({"discounts": "1"}, "discounts", 'Expected a list of items but got type "str".'),
        ({"id": 1}, "id", "A customer with this id already exists."),
        ({"id": 0}, "id", "Ensure this value is greater than or equal to 1."),
        ({"country": "GBR"}, "country", "Use the ISO 3166-1 alpha-2 code, e.g. GB."),
        ({"status": "deleted"}, "status", '"deleted" is not a valid choice.'),
    ],
)
def test_customer_validation_names_the_field(
    api: APIClient, usd: Currency, gbp_customer: Customer, payload: dict, field: str, message: str
) -> None:
    response = api.post("/api/v1/customers/", customer_payload(**payload), format="json")
    assert_field_error(response, field, message)
    assert list(Customer.objects.values_list("id", flat=True)) == [1]


def test_an_email_may_be_kept_on_update(api: APIClient, gbp_customer: Customer) -> None:
    response = api.patch("/api/v1/customers/1/", {"email": "Jane@example.co.uk"}, format="json")
    assert response.status_code == 200, response.content


# --- The GetTokenPricing preview ------------------------------------------------------


def test_token_pricing_preview_is_the_get_token_pricing_answer(
    api: APIClient, gbp_customer: Customer
) -> None:
    status, answer = solusio_answer(1)
    preview = api.get("/api/v1/customers/1/token-pricing/")
    assert (preview.status_code, status) == (200, 200)
    assert preview["Content-Type"] == "application/json"
    assert preview.content == answer
    parsed = json.loads(preview.content, parse_float=Decimal)
    # A JSON number, not a string and not a float with noise.
    assert parsed["user_token_unit_cost"] == Decimal("0.0008114406")
    assert b'"user_token_unit_cost":0.0008114406' in preview.content


def test_token_pricing_preview_of_an_unknown_customer_is_404(api: APIClient) -> None:
    response = api.get("/api/v1/customers/404/token-pricing/")
    assert response.status_code == 404
    assert body(response) == {"message": "Not found.", "errors": {}}


def test_customer_changes_through_the_api_reach_get_token_pricing(
    api: APIClient,
    gbp_customer: Customer,
    seed_taxes: list[TaxRule],
    django_capture_on_commit_callbacks,
) -> None:
    assert unit_cost(1) == Decimal("0.0008114406")
    with django_capture_on_commit_callbacks(execute=True):
        api.patch("/api/v1/customers/1/", {"discounts": []}, format="json")
    assert unit_cost(1) == Decimal("0.00079") * Decimal("1.06") * Decimal("1.02")
    with django_capture_on_commit_callbacks(execute=True):
        api.patch("/api/v1/customers/1/", {"region": ""}, format="json")
    assert unit_cost(1) == Decimal("0.00079") * Decimal("1.02")
    with django_capture_on_commit_callbacks(execute=True):
        api.patch("/api/v1/customers/1/", {"billing_exempt": True}, format="json")
    assert unit_cost(1) == 0


def test_sync_records_and_retry_through_the_api(usd: Currency) -> None:
    from users import services
    from users.models import SyncRecord

    staff = make_user("sync-staff", models=[Customer, SyncRecord])
    staff.user_permissions.add(Permission.objects.get(codename="retry_syncrecord"))
    api = token_client(staff)
    customer = services.create_customer(email="api@example.com", currency=usd)
    SyncRecord.objects.filter(customer_id=customer.pk).update(state="parked", last_error="422")
    listed = api.get("/api/v1/sync-records/", {"state": "parked", "customer": str(customer.pk)})
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert (row["customer_id"], row["action"], row["last_error"]) == (customer.pk, "upsert", "422")
    retried = api.post(f"/api/v1/sync-records/{row['id']}/retry/")
    assert (retried.status_code, retried.json()) == (202, {"count": 1})
    assert SyncRecord.objects.get(pk=row["id"]).state == "pending"
    resync = api.post(f"/api/v1/customers/{customer.pk}/resync/")
    assert resync.status_code == 202
    assert SyncRecord.objects.filter(customer_id=customer.pk).count() == 2
    assert api.delete(f"/api/v1/customers/{customer.pk}/").status_code == 204
    last = SyncRecord.objects.filter(customer_id=customer.pk).last()
    assert last is not None
    assert last.action == "delete"
