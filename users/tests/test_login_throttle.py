"""Brute force on the portal and admin sign-in: django-axes locks an account, and an
address, after LOGIN_FAILURE_LIMIT failures (429), whatever the password after that."""

import logging

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from pricing.models import Currency
from users import services
from users.models import Customer

pytestmark = pytest.mark.django_db

LOGIN = reverse("account-login")
ADMIN_LOGIN = reverse("admin:login")
GOOD = "correct-horse-battery-staple"


@pytest.fixture
def customer(usd: Currency) -> Customer:
    customer = services.create_customer(email="jane@example.com", name="Jane", currency=usd)
    services.set_customer_password(customer_id=customer.pk, password=GOOD)
    return customer


def portal_attempt(email: str, password: str, address: str = "203.0.113.5") -> tuple[int, bool]:
    """Status of the sign-in answer, and whether the client is signed in after it."""
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"username": email, "password": password})
    return response.status_code, client.get(reverse("account-home")).status_code == 200


def test_200_wrong_passwords_then_the_right_one_is_not_signed_in(customer: Customer) -> None:
    answers = [portal_attempt("jane@example.com", f"guess-{i}")[0] for i in range(200)]
    assert answers[:9] == [200] * 9  # the form again, "enter a correct e-mail and password"
    assert set(answers[9:]) == {429}
    status, signed_in = portal_attempt("jane@example.com", GOOD)
    assert (status, signed_in) == (429, False)
    page = Client(REMOTE_ADDR="203.0.113.5").post(LOGIN, {"username": "x@y.test", "password": "z"})
    assert "Too many failed sign-ins" in page.content.decode()


def test_the_account_is_locked_from_every_address(customer: Customer) -> None:
    for i in range(10):
        portal_attempt("jane@example.com", "wrong", address=f"198.51.100.{i}")
    assert portal_attempt("jane@example.com", GOOD, address="192.0.2.77") == (429, False)


def test_an_address_is_locked_for_every_account(customer: Customer) -> None:
    for i in range(10):
        portal_attempt(f"nobody{i}@example.com", "wrong", address="192.0.2.9")
    assert portal_attempt("jane@example.com", GOOD, address="192.0.2.9") == (429, False)
    # Another address and the account itself are not affected.
    assert portal_attempt("jane@example.com", GOOD, address="192.0.2.10") == (302, True)


def test_below_the_limit_the_right_password_still_works(customer: Customer) -> None:
    for _ in range(9):
        portal_attempt("jane@example.com", "wrong")
    assert portal_attempt("jane@example.com", GOOD) == (302, True)


def test_a_password_reset_unlocks_the_account(customer: Customer) -> None:
    from users import passwords

    for i in range(10):
        portal_attempt("jane@example.com", "wrong", address=f"198.51.100.{i}")
    key = passwords.reset_key(customer)
    new = GOOD + "-2"
    done = Client().post(
        reverse("account-reset"), {"key": key, "new_password1": new, "new_password2": new}
    )
    assert done.status_code == 302
    assert portal_attempt("jane@example.com", new, address="192.0.2.1") == (302, True)


def test_40_wrong_admin_passwords_then_the_right_one_is_not_logged_in() -> None:
    User.objects.create_superuser("boss", "boss@example.com", GOOD)
    client = Client(REMOTE_ADDR="203.0.113.8")
    answers = [
        client.post(ADMIN_LOGIN, {"username": "boss", "password": f"guess-{i}"}).status_code
        for i in range(40)
    ]
    assert answers[:9] == [200] * 9
    assert set(answers[9:]) == {429}
    client.post(ADMIN_LOGIN, {"username": "boss", "password": GOOD})
    assert client.get(reverse("admin:index")).status_code == 302  # back to the login


def test_each_failure_is_logged_with_the_client_address(
    customer: Customer, caplog: pytest.LogCaptureFixture, settings: object
) -> None:
    with caplog.at_level(logging.INFO):
        portal_attempt("jane@example.com", "wrong", address="203.0.113.44")
    failures = [r.getMessage() for r in caplog.records if "login failure" in r.getMessage()]
    assert failures
    assert all("203.0.113.44" in m for m in failures)
    assert GOOD not in caplog.text
