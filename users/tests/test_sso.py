"""Single sign-on (Step 9): the owner gets a one-time token for their own SolusIO user;
nobody else does; suspended and locked customers get a page; the token is never logged."""

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from solusio.testing import SimulatorInfo
from users import services
from users.models import Customer, LoginAudit, SolusioAccount
from users.selectors import customer_for_request
from users.tests.conftest import deliver_all

pytestmark = pytest.mark.django_db

HOME = reverse("account-home")
LOGIN = reverse("account-login")
PANEL = reverse("account-control-panel")
TEMPLATE = "https://panel.example.test/auth/by_token?token={token}"


@pytest.fixture
def sso(sim: SimulatorInfo, settings: Any) -> SimulatorInfo:
    settings.SOLUSIO_LOGIN_URL_TEMPLATE = TEMPLATE
    return sim


def customer_with_login(make_customer: Any, email: str, **fields: Any) -> Customer:
    customer = make_customer(email=email, **fields)
    services.set_customer_password(customer_id=customer.pk, password="correct horse 1")
    deliver_all()
    return Customer.objects.get(pk=customer.pk)


def signed_in(customer: Customer) -> Client:
    client = Client()
    response = client.post(LOGIN, {"username": customer.email, "password": "correct horse 1"})
    assert response.status_code == 302, response.content
    return client


def token_owner(info: SimulatorInfo, location: str) -> int:
    token = parse_qs(urlsplit(location).query)["token"][0]
    return info.control.simulator.state.tokens[token]  # type: ignore[union-attr]


def test_the_owner_is_redirected_into_their_own_solusio_user(
    sso: SimulatorInfo, make_customer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ann = customer_with_login(make_customer, "ann@example.com")
    client = signed_in(ann)

    page = client.get(HOME)
    assert page.status_code == 200
    body = page.content.decode()
    assert "Open control panel" in body
    assert "Active" in body

    response = client.post(PANEL)

    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("https://panel.example.test/auth/by_token?token=")
    assert token_owner(sso, location) == SolusioAccount.objects.get(pk=ann.pk).solusio_user_id
    token = parse_qs(urlsplit(location).query)["token"][0]
    assert token not in caplog.text
    calls = sso.control.calls(method="POST")
    assert calls[-1]["body"] == {"is_one_time": True}
    audit = LoginAudit.objects.get()
    assert (audit.customer_id, audit.staff_username, audit.outcome) == (ann.pk, "", "redirected")
    assert token not in str(LoginAudit.objects.values().get())


def test_a_customer_only_ever_reaches_their_own_user(
    sso: SimulatorInfo, make_customer: Any
) -> None:
    ann = customer_with_login(make_customer, "ann@example.com")
    bob = customer_with_login(make_customer, "bob@example.com")
    client = signed_in(bob)
    # Nothing in the request can name another customer: extra fields are ignored.
    response = client.post(PANEL, {"customer_id": ann.pk, "user_id": 1})
    assert token_owner(sso, response["Location"]) == bob.solusio.solusio_user_id
    assert bob.solusio.solusio_user_id != ann.solusio.solusio_user_id


@pytest.mark.parametrize("status", ["suspended", "locked"])
def test_a_suspended_or_locked_customer_gets_a_page_not_a_token(
    sso: SimulatorInfo, make_customer: Any, status: str
) -> None:
    ann = customer_with_login(make_customer, "ann@example.com")
    client = signed_in(ann)
    services.change_customer_status(customer_id=ann.pk, status=status, reason="test")

    home = client.get(HOME).content.decode()
    assert "Open control panel" not in home
    response = client.post(PANEL)

    assert response.status_code == 403
    assert f"is {status}" in response.content.decode()
    assert not [c for c in sso.control.calls(method="POST") if c["path"].endswith("/tokens")]
    assert LoginAudit.objects.get().outcome == status


def test_a_customer_not_yet_in_solusio_is_asked_to_wait(
    sso: SimulatorInfo, make_customer: Any
) -> None:
    ann = make_customer(email="ann@example.com")
    services.set_customer_password(customer_id=ann.pk, password="correct horse 1")
    response = signed_in(ann).post(PANEL)
    assert response.status_code == 503
    assert "still being set up" in response.content.decode()


def test_pages_need_a_customer_login(sso: SimulatorInfo, admin_client: Client) -> None:
    assert Client().get(HOME).status_code == 302
    assert Client().post(PANEL).status_code == 302
    # A staff login is not a customer.
    assert admin_client.get(HOME).status_code == 403
    assert admin_client.post(PANEL).status_code == 403


def test_a_wrong_password_or_unknown_email_signs_nobody_in(
    sso: SimulatorInfo, make_customer: Any
) -> None:
    ann = customer_with_login(make_customer, "ann@example.com")
    for email, password in [(ann.email, "wrong"), ("nobody@example.com", "correct horse 1")]:
        response = Client().post(LOGIN, {"username": email, "password": password})
        assert response.status_code == 200
        assert "correct" in response.content.decode()  # "Please enter a correct …"


def test_customer_for_request(sso: SimulatorInfo, make_customer: Any, rf: Any) -> None:
    ann = customer_with_login(make_customer, "ann@example.com")
    request = rf.get("/")
    request.user = ann.user
    assert customer_for_request(request) == ann
    request.user = User.objects.create_user("staffer")
    assert customer_for_request(request) is None


def test_staff_log_in_as_customer_from_the_admin_and_it_is_audited(
    sso: SimulatorInfo, make_customer: Any, admin_client: Client, admin_user: User
) -> None:
    ann = customer_with_login(make_customer, "ann@example.com")
    response = admin_client.post(
        reverse("admin:users_customer_changelist"),
        {"action": "log_in_as_customer", "_selected_action": [ann.pk]},
    )
    assert response.status_code == 302
    assert token_owner(sso, response["Location"]) == ann.solusio.solusio_user_id
    audit = LoginAudit.objects.get()
    assert (audit.customer_id, audit.staff_username, audit.outcome) == (
        ann.pk,
        admin_user.username,
        "redirected",
    )
    assert admin_client.get(reverse("admin:users_loginaudit_changelist")).status_code == 200
