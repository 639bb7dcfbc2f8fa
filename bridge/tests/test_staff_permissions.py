"""Every admin action and staff API action needs its own permission: tried by a cast of
staff users (no permissions, view-only on everything, and the one permission it needs)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from bridge.api import API_APPS
from pricing.tests.api_helpers import token_client
from users.models import Customer, LoginAudit, SyncRecord

pytestmark = pytest.mark.django_db

CUSTOMERS = reverse("admin:users_customer_changelist")
INVOICES = reverse("admin:usage_invoice_changelist")


@dataclass
class Cast:
    """`nobody` is staff with no permissions; `viewer` may view every model (the API's
    apps and API keys); `granted(...)` makes a viewer who also holds the named permissions."""

    nobody: User
    viewer: User
    granted: Callable[..., User]


def _view_everything() -> list[Permission]:
    return list(
        Permission.objects.filter(
            content_type__app_label__in=(*API_APPS, "bridge"), codename__startswith="view_"
        )
    )


@pytest.fixture
def cast() -> Cast:
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.set(_view_everything())
    made = iter(range(1, 100))

    def granted(*perms: str) -> User:
        user = User.objects.create_user(f"granted-{next(made)}", password="x", is_staff=True)
        extra = [
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, _, codename in (p.partition(".") for p in perms)
        ]
        user.user_permissions.set([*_view_everything(), *extra])
        return user

    nobody = User.objects.create_user("nobody", password="x", is_staff=True)
    return Cast(nobody=nobody, viewer=viewer, granted=granted)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def offered_actions(user: User, changelist: str) -> set[str]:
    response = signed_in(user).get(changelist)
    if response.status_code != 200:
        return set()
    form = response.context["action_form"]  # None when no action is allowed
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def run_action(user: User, changelist: str, action: str, *pks: int) -> None:
    signed_in(user).post(changelist, {"action": action, ACTION_CHECKBOX_NAME: list(pks)})


# --- admin actions -------------------------------------------------------------------------


def test_log_in_as_customer_needs_its_own_permission(cast: Cast, gbp_customer: Customer) -> None:
    for user in (cast.nobody, cast.viewer, cast.granted("users.change_customer")):
        assert "log_in_as_customer" not in offered_actions(user, CUSTOMERS)
        run_action(user, CUSTOMERS, "log_in_as_customer", gbp_customer.pk)
    assert not LoginAudit.objects.exists()

    allowed = cast.granted("users.log_in_as_customer")
    assert "log_in_as_customer" in offered_actions(allowed, CUSTOMERS)
    run_action(allowed, CUSTOMERS, "log_in_as_customer", gbp_customer.pk)
    # Not in SolusIO yet, so refused, but tried and audited under the staff member's name.
    audit = LoginAudit.objects.get()
    assert (audit.staff_username, audit.outcome) == (allowed.username, "not_synced")


def test_sync_to_solusio_again_needs_change_customer(cast: Cast, gbp_customer: Customer) -> None:
    before = SyncRecord.objects.count()
    for user in (cast.nobody, cast.viewer):
        assert "resync" not in offered_actions(user, CUSTOMERS)
        run_action(user, CUSTOMERS, "resync", gbp_customer.pk)
    assert SyncRecord.objects.count() == before

    allowed = cast.granted("users.change_customer")
    assert "resync" in offered_actions(allowed, CUSTOMERS)
    run_action(allowed, CUSTOMERS, "resync", gbp_customer.pk)
    assert SyncRecord.objects.count() == before + 1


def test_invoice_actions_need_change_and_the_export_needs_view(cast: Cast) -> None:
    changes = {"issue", "mark_paid", "regenerate", "resend_email"}  # void: usage credit notes
    assert offered_actions(cast.nobody, INVOICES) == set()
    assert offered_actions(cast.viewer, INVOICES) == {"export_csv"}
    assert offered_actions(cast.granted("usage.change_invoice"), INVOICES) == {
        "export_csv",
        *changes,
    }


@pytest.mark.parametrize(
    ("changelist", "action", "needed"),
    [
        ("admin:pricing_plan_changelist", "push_prices", "pricing.change_plan"),
        ("admin:users_customer_changelist", "retry_parked", "users.retry_syncrecord"),
        ("admin:users_syncrecord_changelist", "retry", "users.retry_syncrecord"),
        ("admin:bridge_apikey_changelist", "revoke", "bridge.change_apikey"),
    ],
)
def test_other_admin_actions_are_offered_only_with_their_permission(
    cast: Cast, changelist: str, action: str, needed: str
) -> None:
    url = reverse(changelist)
    for user in (cast.nobody, cast.viewer):
        assert action not in offered_actions(user, url)
    allowed = cast.granted(needed)
    assert action in offered_actions(allowed, url)


@pytest.mark.parametrize(
    ("url", "needed"),
    [
        ("admin:users_limitgroup_mirror", "users.change_limitgroup"),
        ("admin:pricing_plan_mirror", "pricing.change_plan"),
        ("admin:users_reconcilerun_run", "users.add_reconcilerun"),
    ],
)
def test_admin_buttons_that_write_need_the_write_permission(
    cast: Cast, url: str, needed: str, settings: Any
) -> None:
    # A SolusIO that refuses connections: an allowed refresh reports that and returns.
    settings.SOLUSIO_API_URL = "http://127.0.0.1:9/api/v1"
    settings.SOLUSIO_API_TOKEN = "unused"
    settings.SOLUSIO_RETRY_MAX_ATTEMPTS = 1
    for user in (cast.nobody, cast.viewer):
        assert signed_in(user).post(reverse(url)).status_code == 403
    assert signed_in(cast.granted(needed)).post(reverse(url)).status_code == 302


def test_refresh_buttons_are_shown_only_to_who_may_press_them(cast: Cast) -> None:
    groups = reverse("admin:users_limitgroup_changelist")
    assert "Refresh from SolusIO" not in signed_in(cast.viewer).get(groups).content.decode()
    allowed = signed_in(cast.granted("users.change_limitgroup"))
    assert "Refresh from SolusIO" in allowed.get(groups).content.decode()


# --- staff API -----------------------------------------------------------------------------


def test_api_resync_needs_change_customer_not_add(cast: Cast, gbp_customer: Customer) -> None:
    url = f"/api/v1/customers/{gbp_customer.pk}/resync/"
    for user in (cast.nobody, cast.viewer, cast.granted("users.add_customer")):
        assert token_client(user).post(url).status_code == 403
    assert token_client(cast.granted("users.change_customer")).post(url).status_code == 202


def test_api_token_pricing_preview_needs_view_customer(cast: Cast, gbp_customer: Customer) -> None:
    url = f"/api/v1/customers/{gbp_customer.pk}/token-pricing/"
    assert token_client(cast.nobody).get(url).status_code == 403
    assert token_client(cast.granted()).get(url).status_code == 200


def test_api_invoice_actions_need_change_invoice(cast: Cast) -> None:
    # Checked before the invoice is looked up: no invoice 1 is needed to be refused.
    for user in (cast.nobody, cast.viewer):
        assert token_client(user).post("/api/v1/invoices/1/issue/").status_code == 403
    allowed = token_client(cast.granted("usage.change_invoice"))
    assert allowed.post("/api/v1/invoices/1/issue/").status_code == 404


def test_the_schema_needs_staff_with_at_least_one_permission(cast: Cast) -> None:
    url = "/api/v1/schema/"
    assert APIClient().get(url).status_code == 401
    assert token_client(cast.nobody).get(url).status_code == 403
    customer_side = User.objects.create_user("customer-side", password="x")
    customer_side.user_permissions.set(_view_everything())
    assert token_client(customer_side).get(url).status_code == 403
    assert token_client(cast.viewer).get(url).status_code == 200
    admin = User.objects.create_superuser("root", password="x")
    assert token_client(admin).get(url).status_code == 200
