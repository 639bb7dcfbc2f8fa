"""The shared admin bases: read-only rows stay read-only even for a superuser (keeping
only the permissions an admin names), and singleton settings open on their one row."""

from datetime import date

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.test.client import RequestFactory
from django.utils import timezone

from bridge.admin_tools import ReadOnlyAdminMixin, SingletonModelAdmin
from bridge.models import SingletonModel
from payments.models import Reminder
from payments.tests.factories import issue_invoice
from pricing.models import Currency
from usage.models import Invoice, InvoiceStatus
from users.models import Customer

pytestmark = pytest.mark.django_db

READ_ONLY = {
    "users.syncrecord": (),
    "users.limitgroup": (),
    "users.loginaudit": (),
    "users.reconcilerun": ("delete",),
    "usage.invoice": ("change",),
    "usage.usagerecord": ("delete",),
    "usage.usagepull": ("delete",),
    "usage.dunningevent": ("delete",),
}
SINGLETONS = {"pricing.pricingsettings", "usage.billingsettings", "users.solusiodefaults"}


def _admins() -> dict[str, admin.ModelAdmin]:
    return {model._meta.label_lower: ma for model, ma in admin.site._registry.items()}


@pytest.mark.parametrize(("label", "kept"), READ_ONLY.items())
def test_read_only_rows_keep_only_the_named_permissions(
    admin_user: User, label: str, kept: tuple[str, ...]
) -> None:
    model_admin = _admins()[label]
    assert isinstance(model_admin, ReadOnlyAdminMixin)
    request = RequestFactory().get("/")
    request.user = admin_user
    assert not model_admin.has_add_permission(request)
    assert model_admin.has_change_permission(request) == ("change" in kept)
    assert model_admin.has_delete_permission(request) == ("delete" in kept)
    assert model_admin.has_view_permission(request)


def test_every_singleton_settings_model_uses_the_shared_bases() -> None:
    admins = _admins()
    found = {label for label, ma in admins.items() if issubclass(ma.model, SingletonModel)}
    assert found == SINGLETONS
    assert all(isinstance(admins[label], SingletonModelAdmin) for label in SINGLETONS)


@pytest.mark.parametrize("label", sorted(SINGLETONS))
def test_a_singleton_changelist_opens_its_one_row(admin_client: Client, label: str) -> None:
    app, model = label.split(".")
    response = admin_client.get(f"/admin/{app}/{model}/")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/{app}/{model}/1/change/"
    assert admin_client.get(response["Location"]).status_code == 200
    assert _admins()[label].model.objects.count() == 1


def test_rows_changed_only_by_actions_offer_no_save_and_refuse_a_post(
    admin_client: Client, usd: Currency
) -> None:
    """Invoices and reminders keep "change" for their actions only. Their change forms offer
    no save button: a save would write the row back as read, over a payment that landed
    meanwhile. A POST is refused with 403, and nothing changes or is logged."""
    customer = Customer.objects.create(id=91, email="ro@example.test", currency=usd)
    invoice = issue_invoice(customer, 10, "100.00", priced=True)
    reminder = Reminder.objects.create(
        invoice=invoice,
        customer=customer,
        days=3,
        number=1,
        due_date=date(2026, 11, 16),
        created_at=timezone.now(),
    )
    for url in (
        f"/admin/usage/invoice/{invoice.pk}/change/",
        f"/admin/payments/reminder/{reminder.pk}/change/",
    ):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert 'name="_save"' not in page.content.decode()
        assert 'name="_continue"' not in page.content.decode()
        Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.PAID)  # meanwhile
        assert admin_client.post(url, {"_save": "Save"}).status_code == 403
        assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID
        Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.ISSUED)
    assert not LogEntry.objects.exists()
