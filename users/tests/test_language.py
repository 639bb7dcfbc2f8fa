"""A customer's language (issue 12 §5) is staff's to set in the admin, the staff API and the
importer, like any other customer field; SolusIO is not told (it is not part of its user)."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from pricing.models import Currency
from pricing.tests.api_helpers import assert_field_error, body, staff_client
from users.models import Customer, SyncRecord

pytestmark = pytest.mark.django_db


def test_the_staff_api_sets_a_language_and_refuses_an_unknown_one(usd: Currency) -> None:
    api = staff_client(Customer)
    created = api.post(
        "/api/v1/customers/",
        {"email": "max@example.de", "currency": "USD", "language": "de"},
        format="json",
    )
    assert created.status_code == 201, created.content
    customer_id = body(created)["id"]
    assert Customer.objects.get(pk=customer_id).language == "de"
    records = SyncRecord.objects.filter(customer_id=customer_id).count()

    changed = api.patch(f"/api/v1/customers/{customer_id}/", {"language": "en"}, format="json")
    assert body(changed)["language"] == "en"
    assert SyncRecord.objects.filter(customer_id=customer_id).count() == records  # not SolusIO's

    refused = api.patch(f"/api/v1/customers/{customer_id}/", {"language": "xx"}, format="json")
    assert_field_error(refused, "language", '"xx" is not a valid choice.')
    assert Customer.objects.get(pk=customer_id).language == "en"


def test_the_importer_takes_an_optional_language(tmp_path: Path, usd: Currency) -> None:
    rows = [
        {"id": 41, "email": "max@example.de", "currency": "USD", "language": "de"},
        {"id": 42, "email": "ann@example.com", "currency": "USD"},
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"customers": rows}))
    call_command("import_billing_data", str(path), stdout=StringIO())
    assert dict(Customer.objects.values_list("id", "language")) == {41: "de", 42: "en"}


def test_the_admin_edits_the_language(admin_client: Client, usd: Currency) -> None:
    customer = Customer.objects.create(email="max@example.de", currency=usd)
    url = f"/admin/users/customer/{customer.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert '<option value="de">Deutsch</option>' in page
    form = {
        "email": customer.email,
        "name": "",
        "status": "active",
        "currency": "USD",
        "language": "de",
    }
    assert admin_client.post(url, form).status_code == 302
    assert Customer.objects.get(pk=customer.pk).language == "de"
