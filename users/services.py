"""Writes on customers. The staff API and the importer both come through here."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from bridge.db import advance_id_sequence
from pricing.models import Currency, Discount
from users.models import Customer, CustomerStatus

# What update_customer may change; the id is the SolusIO billing_user_id and never changes.
UPDATABLE_FIELDS = frozenset(
    {"email", "name", "currency", "country", "region", "billing_exempt", "status"}
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
) -> Customer:
    """Create a customer, with the id the old billing system used when one is given."""
    customer = Customer(
        id=id,
        email=email,
        name=name,
        currency=currency,
        country=country,
        region=region,
        billing_exempt=billing_exempt,
        status=status,
    )
    customer.full_clean()
    customer.save(force_insert=True)
    if id is not None:
        advance_customer_id_sequence(past_id=id)
    discounts = list(discounts)
    if discounts:
        customer.discounts.set(discounts)
    return customer


@transaction.atomic
def update_customer(
    *,
    customer: Customer,
    changes: Mapping[str, Any],
    discounts: Iterable[Discount] | None = None,
) -> Customer:
    """Apply `changes` (a subset of UPDATABLE_FIELDS); `discounts`, when given, replaces
    the customer's discounts."""
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(customer, name, value)
    if changes:
        customer.full_clean()
        customer.save()
    if discounts is not None:
        customer.discounts.set(list(discounts))
    return customer
