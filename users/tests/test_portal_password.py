"""Customer portal passwords: staff set one in the admin (Django's password form and
validators, change permission on customers), or the customer resets it by e-mail."""

import logging
import re
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from pricing.models import Currency
from pricing.tests.api_helpers import make_user
from users import passwords, services
from users.models import Customer

pytestmark = pytest.mark.django_db

LOGIN = reverse("account-login")
FORGOT = reverse("account-forgot")
RESET = reverse("account-reset")
GOOD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def worker(request: pytest.FixtureRequest) -> Any:
    """Tasks run where they are sent, as a worker would run them (the reset e-mail is
    sent by one); `@pytest.mark.no_worker` keeps them in the broker instead."""
    from bridge.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = request.node.get_closest_marker("no_worker") is None
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def customer(usd: Currency) -> Customer:
    return services.create_customer(email="Jane@Example.com", name="Jane Doe", currency=usd)


def password_page(customer: Customer) -> str:
    return reverse("admin:users_customer_portal_password", args=[customer.pk])


def signs_in(email: str, password: str) -> bool:
    client = Client()
    response = client.post(LOGIN, {"username": email, "password": password})
    return response.status_code == 302 and client.get(reverse("account-home")).status_code == 200


def staff(username: str, *actions: str) -> Client:
    client = Client()
    client.force_login(make_user(username, models=[Customer], actions=actions))
    return client


# --- staff set it in the admin -------------------------------------------------------------


def test_the_change_page_links_to_set_portal_password(
    admin_client: Client, customer: Customer
) -> None:
    page = admin_client.get(reverse("admin:users_customer_change", args=[customer.pk]))
    body = page.content.decode()
    assert "No portal password yet" in body
    assert password_page(customer) in body


def test_staff_set_the_password_and_the_customer_signs_in(
    admin_client: Client, customer: Customer
) -> None:
    form = admin_client.get(password_page(customer))
    assert form.status_code == 200
    assert "new_password1" in form.content.decode()
    response = admin_client.post(
        password_page(customer), {"new_password1": GOOD, "new_password2": GOOD}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:users_customer_change", args=[customer.pk])
    assert signs_in("jane@example.com", GOOD)
    entry = LogEntry.objects.get(object_id=str(customer.pk))
    assert entry.get_change_message() == "Set the portal password."
    assert GOOD not in entry.change_message
    page = admin_client.get(reverse("admin:users_customer_change", args=[customer.pk]))
    assert "Can sign in at /account/" in page.content.decode()


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (GOOD, GOOD + "x", "The two password fields didn"),
        ("short", "short", "This password is too short"),
        ("password123", "password123", "This password is too common"),
        ("12345678901", "12345678901", "This password is entirely numeric"),
        ("jane@example.com", "jane@example.com", "too similar to the"),
    ],
)
def test_django_password_validators_apply(
    admin_client: Client, customer: Customer, first: str, second: str, message: str
) -> None:
    response = admin_client.post(
        password_page(customer), {"new_password1": first, "new_password2": second}
    )
    assert response.status_code == 200
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not signs_in("jane@example.com", first)


def test_it_needs_change_permission_on_customers(customer: Customer) -> None:
    viewer = staff("viewer", "view")
    assert viewer.get(password_page(customer)).status_code == 403
    refused = viewer.post(password_page(customer), {"new_password1": GOOD, "new_password2": GOOD})
    assert refused.status_code == 403
    assert not signs_in("jane@example.com", GOOD)

    editor = staff("editor", "view", "change")
    done = editor.post(password_page(customer), {"new_password1": GOOD, "new_password2": GOOD})
    assert done.status_code == 302
    assert signs_in("jane@example.com", GOOD)


def test_an_unknown_customer_is_a_404(admin_client: Client) -> None:
    url = reverse("admin:users_customer_portal_password", args=[999_999])
    assert admin_client.get(url).status_code == 404
    anonymous = Client().get(url)
    assert anonymous.status_code == 302  # to the admin login


# --- the customer resets it by e-mail -----------------------------------------------------------


def ask_for_reset(email: str) -> Any:
    return Client().post(FORGOT, {"email": email}, follow=True)


def key_from_mail() -> str:
    (message,) = mail.outbox
    link = re.search(r"(http\S+)", str(message.body))
    assert link is not None, message.body
    url, _, key = link.group(1).partition("#")
    assert url == "http://testserver" + RESET  # the key only in the fragment
    assert key
    return key


def test_the_login_page_offers_forgot_password() -> None:
    body = Client().get(LOGIN).content.decode()
    assert FORGOT in body


def test_forgot_password_resets_by_e_mail_once(customer: Customer) -> None:
    services.set_customer_password(customer_id=customer.pk, password="old-password-123")
    response = ask_for_reset("JANE@example.com")
    assert response.redirect_chain[-1][0] == reverse("account-forgot-sent")
    (message,) = mail.outbox
    assert message.to == ["Jane@Example.com"]
    assert message.from_email == "billing@localhost"
    key = key_from_mail()

    page = Client().get(RESET)
    assert page.status_code == 200
    done = Client().post(RESET, {"key": key, "new_password1": GOOD, "new_password2": GOOD})
    assert done.status_code == 302
    assert done["Location"] == f"{LOGIN}?reset=done"
    assert signs_in("jane@example.com", GOOD)
    assert not signs_in("jane@example.com", "old-password-123")

    # The link worked once.
    again = Client().post(RESET, {"key": key, "new_password1": GOOD, "new_password2": GOOD})
    assert again.status_code == 200
    assert "not valid any more" in again.content.decode()


def test_a_customer_without_a_portal_password_sets_the_first_one(customer: Customer) -> None:
    assert customer.user_id is None
    ask_for_reset("jane@example.com")
    key = key_from_mail()
    Client().post(RESET, {"key": key, "new_password1": GOOD, "new_password2": GOOD})
    assert signs_in("jane@example.com", GOOD)
    login = Customer.objects.get(pk=customer.pk).user
    assert login is not None
    assert login.username == f"customer:{customer.pk}"
    assert not login.is_staff


def test_the_answer_is_the_same_whether_the_address_is_a_customer_or_not(
    customer: Customer,
) -> None:
    make_user("staffer")  # a staff login is never reset through the portal
    User.objects.filter(username="staffer").update(email="staff@example.com")
    known = ask_for_reset("jane@example.com")
    unknown = ask_for_reset("nobody@example.com")
    staff_address = ask_for_reset("staff@example.com")
    assert known.redirect_chain == unknown.redirect_chain == staff_address.redirect_chain
    assert known.content == unknown.content == staff_address.content
    assert len(mail.outbox) == 1


def test_a_malformed_address_gets_a_clear_error_not_a_500() -> None:
    response = Client().post(FORGOT, {"email": "not an address"})
    assert response.status_code == 200
    assert "Enter a valid email address." in response.content.decode()


def test_one_e_mail_per_address_per_minute(customer: Customer) -> None:
    ask_for_reset("jane@example.com")
    ask_for_reset("jane@example.com")
    assert len(mail.outbox) == 1


def test_links_expire(customer: Customer, settings: Any) -> None:
    settings.PASSWORD_RESET_TIMEOUT = 3600
    with time_machine.travel(timezone.now(), tick=False) as clock:
        ask_for_reset("jane@example.com")
        key = key_from_mail()
        clock.shift(timedelta(minutes=61))
        late = Client().post(RESET, {"key": key, "new_password1": GOOD, "new_password2": GOOD})
    assert late.status_code == 200
    assert "not valid any more" in late.content.decode()
    assert not signs_in("jane@example.com", GOOD)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "garbage",
        "Mg.nonsense-token",
        "!!!.x",
        "Zm9v.x-y",
        "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5.x-y",  # 999…9: past a bigint
        "LTE.x-y",  # -1
        "_w.x-y",  # not UTF-8
    ],
)
def test_bad_keys_get_a_clear_error(customer: Customer, key: str) -> None:
    response = Client().post(RESET, {"key": key, "new_password1": GOOD, "new_password2": GOOD})
    assert response.status_code == 200
    body = response.content.decode()
    assert "not valid any more" in body or "This field is required." in body


def test_a_weak_new_password_is_refused_and_the_link_still_works(customer: Customer) -> None:
    ask_for_reset("jane@example.com")
    key = key_from_mail()
    weak = Client().post(RESET, {"key": key, "new_password1": "123", "new_password2": "123"})
    assert weak.status_code == 200
    assert "too short" in weak.content.decode()
    ok = Client().post(RESET, {"key": key, "new_password1": GOOD, "new_password2": GOOD})
    assert ok.status_code == 302


class _Broken:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: Any) -> int:
        raise ConnectionRefusedError("SMTP down")


def test_the_token_never_reaches_the_logs(
    customer: Customer, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    ask_for_reset("jane@example.com")
    key = key_from_mail()
    Client().post(RESET, {"key": key, "new_password1": GOOD, "new_password2": "nope"})
    Client().post(RESET, {"key": key, "new_password1": GOOD, "new_password2": GOOD})
    token = key.partition(".")[2]
    assert token not in caplog.text
    assert GOOD not in caplog.text

    # A failed send is logged, without the link, and the page answers as always.
    settings.EMAIL_BACKEND = f"{__name__}._Broken"
    from django.core.cache import cache

    cache.clear()  # past the one-a-minute limit
    response = ask_for_reset("jane@example.com")
    assert response.redirect_chain[-1][0] == reverse("account-forgot-sent")
    assert f"could not send the reset e-mail to customer {customer.pk}" in caplog.text
    assert "#" not in caplog.text.split("could not send")[-1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1", "too short"),
        ("password123", "too common"),
        ("48151623429", "entirely numeric"),
        ("jane.doe.example", "too similar"),
    ],
)
def test_the_command_applies_the_password_validators(
    usd: Currency, password: str, why: str
) -> None:
    Customer.objects.create(id=41, email="jane.doe@example.com", name="Jane Doe", currency=usd)
    with pytest.raises(CommandError, match=why):
        call_command("set_customer_password", "41", "--password", password)
    assert Customer.objects.get(pk=41).user is None  # nothing was set


@pytest.mark.django_db
def test_the_command_sets_a_good_password_and_refuses_unknown_customers(usd: Currency) -> None:
    Customer.objects.create(id=42, email="ann@example.com", currency=usd)
    out = StringIO()
    call_command("set_customer_password", "42", "--password", "tawny owl at dusk", stdout=out)
    assert "can sign in" in out.getvalue()
    user = Customer.objects.get(pk=42).user
    assert user is not None
    assert user.check_password("tawny owl at dusk")
    with pytest.raises(CommandError, match="no customer 43"):
        call_command("set_customer_password", "43", "--password", "tawny owl at dusk")


def test_reset_links_use_the_public_address_not_the_request_host(
    customer: Customer, settings: Any
) -> None:
    settings.BRIDGE_PUBLIC_URL = "https://billing.example.net/"
    settings.ALLOWED_HOSTS = ["testserver", "evil.example"]
    Client(HTTP_HOST="evil.example").post(FORGOT, {"email": "jane@example.com"})
    (message,) = mail.outbox
    assert f"https://billing.example.net{RESET}#" in str(message.body)
    assert "evil.example" not in str(message.body)


def test_forgot_password_works_while_the_cache_is_down(
    customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.cache.backends.redis import RedisCache

    monkeypatch.setattr(passwords, "cache", RedisCache("redis://127.0.0.1:1/0", {}))
    response = ask_for_reset("jane@example.com")
    assert response.status_code == 200
    assert len(mail.outbox) == 1


@pytest.mark.no_worker
def test_the_request_only_queues_the_same_message_for_known_and_unknown_addresses(
    customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token is made in the request (nor carried by the broker), no e-mail is sent by
    it, and an unknown address costs the same lookup and message."""
    from users import tasks

    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.send_portal_reset, "delay", lambda *args: queued.append(args))
    made: list[Any] = []

    def reset_key(customer: Customer) -> str:
        made.append(customer)
        return ""

    monkeypatch.setattr(passwords, "reset_key", reset_key)
    ask_for_reset("jane@example.com")
    ask_for_reset("nobody@example.com")
    assert queued == [
        (customer.pk, "http://testserver" + RESET),
        (None, "http://testserver" + RESET),
    ]
    assert made == []
    assert mail.outbox == []
    assert passwords.send_reset(customer_id=None, reset_url="x") is False


@pytest.mark.no_worker
def test_a_refused_message_does_not_hold_the_address_for_a_minute(
    customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from users import tasks

    def refuse(*args: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.send_portal_reset, "delay", refuse)
    assert ask_for_reset("jane@example.com").status_code == 200  # the same answer
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.send_portal_reset, "delay", lambda *args: queued.append(args))
    ask_for_reset("jane@example.com")  # at once: nothing was sent the first time
    assert [args[0] for args in queued] == [customer.pk]
