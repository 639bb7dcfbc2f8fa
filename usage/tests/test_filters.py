"""The staff API's and the admin's list filters: a bad value is a 400 (API) or the admin's
"invalid filter" page, never ignored and never a 500."""

import pytest
from django.test import Client

from pricing.tests.api_helpers import assert_field_error, body, staff_client
from usage.models import DunningEvent, Invoice, UsageRecord

pytestmark = pytest.mark.django_db
MONTH = "Use YYYY-MM, e.g. 2026-10."


@pytest.fixture
def api() -> Client:
    return staff_client(Invoice, UsageRecord, DunningEvent, actions=["view"])


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("/api/v1/invoices/?period=0000-01", "period", MONTH),
        ("/api/v1/invoices/?period=2026-13", "period", MONTH),
        ("/api/v1/invoices/?period=abc", "period", MONTH),
        ("/api/v1/invoices/export/?period=abc", "period", MONTH),
        ("/api/v1/usage/?period=99999-01", "period", MONTH),
        (
            "/api/v1/invoices/?status=late",
            "status",
            "Select a valid choice. late is not one of the available choices.",
        ),
        ("/api/v1/invoices/?currency=dollar", "currency", "Use a 3-letter ISO code."),
        ("/api/v1/invoices/?customer=abc", "customer", "Enter a whole number."),
        (
            f"/api/v1/invoices/?customer={2**63}",
            "customer",
            f"Ensure this value is less than or equal to {2**63 - 1}.",
        ),
        ("/api/v1/invoices/?overdue=maybe", "overdue", "Use true or false."),
        ("/api/v1/usage/?orphan=maybe", "orphan", "Use true or false."),
        ("/api/v1/usage/?customer=1.5", "customer", "Enter a whole number."),
        ("/api/v1/dunning-events/?customer=x", "customer", "Enter a whole number."),
        ("/api/v1/invoices/upcoming/", "customer", "This field is required."),
        ("/api/v1/invoices/upcoming/?customer=abc", "customer", "Enter a whole number."),
        ("/api/v1/invoices/upcoming/?customer=1&live=maybe", "live", "Use true or false."),
    ],
)
def test_a_bad_query_value_is_a_400_naming_the_parameter(
    api: Client, query: str, field: str, message: str
) -> None:
    assert_field_error(api.get(query), field, message)


def test_good_query_values_filter(api: Client, drafts: list[Invoice]) -> None:
    def count(query: str) -> int:
        response = api.get(query)
        assert response.status_code == 200, response.content
        return int(body(response)["count"])

    assert count("/api/v1/invoices/?period=2026-10") == 3
    assert count("/api/v1/invoices/?period=2026-09") == 0
    assert count("/api/v1/invoices/?period=2026-10&customer=2&currency=usd") == 1
    assert count("/api/v1/invoices/?overdue=false") == 3  # drafts are never overdue
    assert count("/api/v1/invoices/?overdue=true") == 0
    assert count("/api/v1/usage/?period=2026-10&orphan=false") == 6
    assert count("/api/v1/usage/?period=2026-10&orphan=true") == 0
    assert count("/api/v1/usage/?period=2026-11") == 0
    export = api.get("/api/v1/invoices/export/?period=2026-10&customer=1")
    assert export.status_code == 200
    assert export.content.decode().count("\n") == 3  # the header and customer 1's two lines


@pytest.mark.parametrize(
    "query",
    [
        "/admin/usage/invoice/?period=abc",
        "/admin/usage/invoice/?period=0000-01",
        "/admin/usage/invoice/?customer=abc",
        "/admin/usage/invoice/?overdue=maybe",
        "/admin/usage/usagerecord/?period=99999-01",
        "/admin/usage/usagerecord/?orphan=maybe",
    ],
)
def test_a_bad_admin_filter_gets_the_admins_invalid_filter_answer(
    admin_client: Client, query: str
) -> None:
    response = admin_client.get(query)
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_a_good_admin_period_filters(admin_client: Client, drafts: list[Invoice]) -> None:
    assert admin_client.get("/admin/usage/invoice/?period=2026-10").context["cl"].result_count == 3
    assert admin_client.get("/admin/usage/invoice/?period=2026-11").context["cl"].result_count == 0
    records = admin_client.get("/admin/usage/usagerecord/?period=2026-10&orphan=no")
    assert records.context["cl"].result_count == 6


def test_the_schema_documents_the_list_filters() -> None:
    response = staff_client(Invoice, actions=("view",)).get("/api/v1/schema/", {"format": "json"})
    paths = body(response)["paths"]

    def query(path: str) -> dict[str, object]:
        parameters = paths[path]["get"]["parameters"]
        return {p["name"]: p["schema"] for p in parameters if p["in"] == "query"}

    invoices = query("/api/v1/invoices/")
    assert set(invoices) == {"page", "period", "status", "currency", "customer", "overdue"}
    assert invoices["period"]["pattern"] == r"^\d{4}-\d{2}$"  # type: ignore[index]
    assert invoices["customer"] == {"type": "integer", "format": "int64"}
    assert set(query("/api/v1/invoices/export/")) == set(invoices) - {"page"}
    assert set(query("/api/v1/invoices/upcoming/")) == {"customer", "live"}
    assert set(query("/api/v1/usage/")) == {"page", "orphan", "unknown_kind", "period", "customer"}
    assert set(query("/api/v1/customers/")) >= {"status", "currency", "billing_exempt", "search"}
