"""customer_required: every portal page sends anonymous visitors to the portal's sign-in
(coming back where they were) and refuses a login that is not a customer's."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

PAGES = [
    ("get", reverse("account-home")),
    ("post", reverse("account-control-panel")),
    ("get", reverse("account-invoices")),
    ("get", reverse("account-invoice-pdf", args=[1])),
]


@pytest.mark.parametrize(("method", "url"), PAGES)
def test_anonymous_visitors_go_to_sign_in_and_come_back(method: str, url: str) -> None:
    response = getattr(Client(), method)(url)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == reverse("account-login")
    assert parse_qs(location.query) == {"next": [url]}


@pytest.mark.parametrize(("method", "url"), PAGES)
def test_a_staff_login_is_not_a_customer(admin_client: Client, method: str, url: str) -> None:
    response = getattr(admin_client, method)(url)
    assert response.status_code == 403
    assert "account/not_a_customer.html" in [t.name for t in response.templates]
