"""Staff API keys: `Authorization: Token <key>` works for a new key; only a digest is
stored; expired, revoked and inactive users' keys are refused; each staff member sees only
their own keys in the admin and nobody sees a secret after the page that made it."""

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from bridge.api_keys import create_api_key, revoke_api_keys
from bridge.models import ApiKey

pytestmark = pytest.mark.django_db

KEYS = reverse("admin:bridge_apikey_changelist")
ADD = reverse("admin:bridge_apikey_add")
CURRENCIES = "/api/v1/currencies/"


def staff(username: str, *codenames: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username, password="x", is_staff=True, is_superuser=superuser)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_new_key_works_with_the_token_header_and_only_its_digest_is_stored() -> None:
    user = staff("ann", "view_currency")
    row, key = create_api_key(user=user, name="export script")
    assert api(key).get(CURRENCIES).status_code == 200
    row.refresh_from_db()
    assert row.digest == hashlib.sha256(key.encode()).hexdigest()
    assert row.prefix == key[:8]
    stored = [str(value) for value in ApiKey.objects.values().get().values()]
    assert key not in stored
    assert row.last_used_at is not None


@pytest.mark.parametrize("how", ["expired", "revoked", "inactive user", "unknown"])
def test_expired_revoked_inactive_and_unknown_keys_are_401(how: str) -> None:
    user = staff("ann", "view_currency")
    row, key = create_api_key(user=user)
    if how == "expired":
        ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif how == "revoked":
        assert revoke_api_keys(key_ids=[row.pk]) == 1
    elif how == "inactive user":
        User.objects.filter(pk=user.pk).update(is_active=False)
    else:
        key = key[:-1] + ("A" if key[-1] != "A" else "B")
    response = api(key).get(CURRENCIES)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_key_not_yet_expired_works() -> None:
    user = staff("ann", "view_currency")
    _, key = create_api_key(user=user, expires_at=timezone.now() + timedelta(hours=1))
    assert api(key).get(CURRENCIES).status_code == 200


def test_staff_see_only_their_own_keys_and_superusers_all_but_no_secret() -> None:
    ann = staff("ann", "view_apikey")
    bob = staff("bob", "view_apikey")
    root = staff("root", superuser=True)
    ann_key, ann_secret = create_api_key(user=ann, name="ann's script")
    bob_key, bob_secret = create_api_key(user=bob, name="bob's script")

    page = signed_in(ann).get(KEYS).content.decode()
    assert "ann&#x27;s script" in page
    assert "bob&#x27;s script" not in page
    other = reverse("admin:bridge_apikey_change", args=[bob_key.pk])
    assert signed_in(ann).get(other).status_code == 302  # "does not exist" for her

    page = signed_in(root).get(KEYS).content.decode()
    assert ann_key.prefix in page
    assert bob_key.prefix in page
    for url in (KEYS, reverse("admin:bridge_apikey_change", args=[bob_key.pk])):
        body = signed_in(root).get(url).content.decode()
        assert ann_secret not in body
        assert bob_secret not in body


def test_the_admin_shows_a_new_key_once_and_it_works() -> None:
    ann = staff("ann", "add_apikey", "view_apikey", "view_currency")
    client = signed_in(ann)
    response = client.post(ADD, {"name": "nightly export", "expires_at": ""})
    assert response.status_code == 200
    key = response.context["secret"]
    assert key in response.content.decode()
    row = ApiKey.objects.get()
    assert (row.user, row.name, row.prefix) == (ann, "nightly export", key[:8])
    assert api(key).get(CURRENCIES).status_code == 200
    assert key not in client.get(KEYS).content.decode()
    assert (
        key not in client.get(reverse("admin:bridge_apikey_change", args=[row.pk])).content.decode()
    )


def test_the_admin_refuses_an_expiry_in_the_past() -> None:
    client = signed_in(staff("ann", "add_apikey", "view_apikey"))
    response = client.post(ADD, {"name": "x", "expires_at": "2000-01-01 00:00"})
    assert response.status_code == 200
    assert "The expiry must be in the future." in response.content.decode()
    assert not ApiKey.objects.exists()


def test_adding_keys_needs_add_permission_and_revoking_needs_change() -> None:
    viewer = staff("ann", "view_apikey")
    assert signed_in(viewer).get(ADD).status_code == 403
    row, _ = create_api_key(user=viewer)
    action = {"action": "revoke", "_selected_action": [row.pk]}
    signed_in(viewer).post(KEYS, action)
    row.refresh_from_db()
    assert row.revoked_at is None  # view alone revokes nothing

    changer = staff("bob", "view_apikey", "change_apikey")
    bob_row, _ = create_api_key(user=changer)
    signed_in(changer).post(KEYS, {"action": "revoke", "_selected_action": [row.pk, bob_row.pk]})
    row.refresh_from_db()
    bob_row.refresh_from_db()
    assert row.revoked_at is None  # not his: his list does not hold it
    assert bob_row.revoked_at is not None


def test_bootstrap_admin_prints_a_key_once() -> None:
    out = StringIO()
    call_command("bootstrap_admin", stdout=out)
    line = next(x for x in out.getvalue().splitlines() if x.startswith("Staff API key"))
    key = line.rsplit(" ", 1)[1]
    assert api(key).get("/api/v1/schema/").status_code == 200
    again = StringIO()
    call_command("bootstrap_admin", stdout=again)
    assert key not in again.getvalue()
    assert "has a staff API key already" in again.getvalue()
    assert ApiKey.objects.count() == 1


def test_create_api_key_command_prints_a_working_key() -> None:
    staff("ann", "view_currency")
    out = StringIO()
    call_command("create_api_key", "ann", "--name", "cron", "--expires-in-days", "30", stdout=out)
    key = out.getvalue().strip()
    assert api(key).get(CURRENCIES).status_code == 200
    row = ApiKey.objects.get()
    assert row.name == "cron"
    assert row.expires_at is not None
    assert timedelta(days=29) < row.expires_at - timezone.now() <= timedelta(days=30)


def test_the_migration_hashes_drf_tokens_and_erases_the_plain_keys() -> None:
    from importlib import import_module

    migration = import_module("bridge.migrations.0002_hash_drf_tokens")
    user = staff("ann", "view_currency")
    plain = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamp with time zone NOT NULL, user_id integer NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)", [plain, timezone.now(), user.pk]
        )
    with connection.schema_editor() as editor:
        migration.hash_drf_tokens(apps, editor)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)
    row = ApiKey.objects.get()
    assert (row.user, row.prefix) == (user, plain[:8])
    assert api(plain).get(CURRENCIES).status_code == 200


def test_drf_plain_token_pages_are_gone(admin_client: Client) -> None:
    assert admin_client.get("/admin/authtoken/tokenproxy/").status_code == 404
