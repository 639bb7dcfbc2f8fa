"""Every issued invoice carries its RF reference: on the portal and in the staff API (the
PDF, e-mail and e-invoices are checked in usage/tests)."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.test import APIClient

from solusio.testing import running_simulator
from usage.models import Invoice
from users.models import Customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def solusio(settings: Any) -> Iterator[None]:
    """The portal's page previews the month so far from SolusIO: the simulator."""
    with running_simulator(users=2, servers=0) as sim:
        settings.SOLUSIO_API_URL = sim.url
        settings.SOLUSIO_API_TOKEN = sim.token
        settings.SOLUSIO_VERIFY_TLS = False
        yield


def test_the_portal_and_the_api_show_the_reference(
    customer: Customer, issue: Callable[..., Invoice], solusio: None
) -> None:
    invoice = issue(customer, 10, "30.00", priced=True)  # the page writes money from it
    login = User.objects.create_user(username=f"customer:{customer.pk}", password="x")
    Customer.objects.filter(pk=customer.pk).update(user=login)
    portal = Client()
    portal.force_login(login)
    page = portal.get("/account/invoices/").content.decode()
    assert "Reference RF74 0000 0000 1" in page
    clerk = User.objects.create_user("clerk", password="x", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_invoice"))
    api = APIClient()
    api.force_authenticate(clerk)
    assert api.get(f"/api/v1/invoices/{invoice.pk}/").json()["payment_reference"] == (
        "RF74000000001"
    )
    listed = api.get("/api/v1/invoices/").json()["results"]
    assert [row["payment_reference"] for row in listed] == ["RF74000000001"]
