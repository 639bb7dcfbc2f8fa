"""Writes on customers (admin, staff API, importer, dunning). A write SolusIO should know about
also writes a sync record in the same transaction, after the customer row, so concurrent
changes get record ids in the order they were made."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from bridge.db import advance_id_sequence
from pricing.models import Currency, Discount
from users import sync
from users.models import (
    INVOICE_DETAIL_FIELDS,
    Customer,
    CustomerStatus,
    LimitGroup,
    SolusioDefaults,
    SyncAction,
    default_language,
)

# What update_customer may change; the id is the SolusIO billing_user_id and never changes.
UPDATABLE_FIELDS = frozenset(
    {"email", "name", "currency", "country", "region", "billing_exempt", "status", "limit_group"}
    | set(INVOICE_DETAIL_FIELDS)
    | {"language"}
)


def advance_customer_id_sequence(*, past_id: int) -> None:
    """After creating a customer with an explicit id: keep later auto ids clear of it."""
    advance_id_sequence(model=Customer, past_id=past_id)


@transaction.atomic
def create_customer(
    *,
    email: str,
    currency: Currency,
    id: int | None = None,  # the billing user id; None = the next auto id
    name: str = "",
    country: str = "",
    region: str = "",
    billing_exempt: bool = False,
    status: str = CustomerStatus.ACTIVE,
    discounts: Iterable[Discount] = (),
    limit_group: LimitGroup | None = None,
    company_name: str = "",
    billing_address: str = "",
    vat_id: str = "",
    tax_exemption_reason: str = "",
    language: str = "",  # empty: settings.LANGUAGE_CODE
) -> Customer:
    """Create a customer, with the id the old billing system used when one is given, and
    queue the creation of its SolusIO user."""
    if limit_group is None:
        # The default is copied, not referenced: it is "the group for new customers", so
        # changing it later must not move existing customers (Step 5).
        limit_group = SolusioDefaults.load().default_limit_group
    customer = Customer(
        id=id,
        email=email,
        name=name,
        currency=currency,
        country=country,
        region=region,
        billing_exempt=billing_exempt,
        status=status,
        limit_group=limit_group,
        company_name=company_name,
        billing_address=billing_address,
        vat_id=vat_id,
        tax_exemption_reason=tax_exemption_reason,
        language=language or default_language(),
    )
    customer.full_clean()
    customer.save(force_insert=True)
    if id is not None:
        advance_customer_id_sequence(past_id=id)
    discounts = list(discounts)
    if discounts:
        customer.discounts.set(discounts)
    sync.record_change(customer=customer, action=SyncAction.UPSERT, reason="created")
    return customer


@transaction.atomic
def update_customer(
    *,
    customer: Customer,
    changes: Mapping[str, Any],
    discounts: Iterable[Discount] | None = None,
    reason: str = "edited",
) -> Customer:
    """Apply `changes` (a subset of UPDATABLE_FIELDS); `discounts`, when given, replaces
    the customer's discounts. A change SolusIO cares about is queued for it."""
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    # Lock the row and read what SolusIO was last told to have, before applying anything
    # (the admin hands us an instance its form has already modified).
    stored = Customer.objects.select_for_update().get(pk=customer.pk)
    before = sync.desired_user(stored)
    for name, value in changes.items():
        setattr(customer, name, value)
    if changes:
        customer.full_clean()
        customer.save()
    if discounts is not None:
        customer.discounts.set(list(discounts))
    if sync.desired_user(customer) != before:
        sync.record_change(customer=customer, action=SyncAction.UPSERT, reason=reason)
    if "email" in changes and customer.user_id is not None:
        # The portal login follows the e-mail (it is what the customer types).
        get_user_model().objects.filter(pk=customer.user_id).update(email=customer.email)
    return customer


def change_customer_status(*, customer_id: int, status: str, reason: str) -> None:
    """Activate, lock or suspend a customer, and its SolusIO user with it.

    The one way to change a status (dunning suspends and reactivates through here); `reason`
    goes with the sync record, so staff see why SolusIO was told. Setting the status the
    customer already has changes nothing and queues nothing.
    """
    if status not in CustomerStatus.values:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(CustomerStatus.values)}")
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        if customer.status == status:
            return
        update_customer(customer=customer, changes={"status": status}, reason=reason[:255])


@transaction.atomic
def delete_customer(*, customer: Customer, reason: str = "deleted") -> None:
    """Delete a customer and queue the deletion of its SolusIO user."""
    snapshot = sync.desired_user(customer)
    customer_id = customer.pk
    user_id = customer.user_id
    customer.delete()
    if user_id is not None:
        get_user_model().objects.filter(pk=user_id).delete()
    sync.record_delete(customer_id=customer_id, snapshot=snapshot, reason=reason)


@transaction.atomic
def resync_customer(*, customer_id: int, reason: str = "resync requested") -> None:
    """Queue the customer's whole state for SolusIO again (reconciliation, staff)."""
    customer = Customer.objects.select_for_update().get(pk=customer_id)
    sync.record_change(customer=customer, action=SyncAction.UPSERT, reason=reason)


def portal_username(customer_id: int) -> str:
    # Not the e-mail: staff and customers share the auth table, and a customer's username
    # must never collide with a staff login.
    return f"customer:{customer_id}"


@transaction.atomic
def ensure_portal_login(*, customer_id: int) -> Any:
    """The customer's login for the customer pages (/account/); made without a usable
    password when they have none yet (a reset link then sets the first one)."""
    customer = Customer.objects.select_for_update().get(pk=customer_id)
    user_model = get_user_model()
    if customer.user_id is not None:
        return user_model.objects.get(pk=customer.user_id)
    user = user_model.objects.create_user(
        username=portal_username(customer.pk), email=customer.email, password=None
    )
    customer.user = user
    customer.save(update_fields=["user", "updated_at"])
    return user


@transaction.atomic
def set_customer_password(*, customer_id: int, password: str) -> None:
    """Give the customer a login for the customer pages (/account/), or a new password
    (which also ends every reset link sent before)."""
    user = ensure_portal_login(customer_id=customer_id)
    user.set_password(password)
    user.save(update_fields=["password"])


def set_default_limit_group(*, limit_group: LimitGroup | None) -> None:
    defaults = SolusioDefaults.load()
    defaults.default_limit_group = limit_group
    defaults.save()


@transaction.atomic
def mirror_limit_groups() -> list[LimitGroup]:
    """Copy SolusIO's limit groups (Step 5) into the bridge, so staff can pick them.

    Groups SolusIO no longer lists are kept, marked gone: customers may still point at them.
    """
    from django.utils import timezone

    from solusio.connect import solusio_client

    now = timezone.now()
    seen: list[LimitGroup] = []
    with solusio_client() as client:
        for group in client.iter_limit_groups():
            row, _ = LimitGroup.objects.update_or_create(
                id=group.id,
                defaults={
                    "name": group.name,
                    "vms_limit": group.vms.limit,
                    "vms_enabled": group.vms.is_enabled,
                    "running_vms_limit": group.running_vms.limit,
                    "running_vms_enabled": group.running_vms.is_enabled,
                    "additional_ips_limit": group.additional_ips.limit,
                    "additional_ips_enabled": group.additional_ips.is_enabled,
                    "in_solusio": True,
                    "mirrored_at": now,
                },
            )
            seen.append(row)
    LimitGroup.objects.exclude(pk__in=[g.pk for g in seen]).update(in_solusio=False)
    return seen
