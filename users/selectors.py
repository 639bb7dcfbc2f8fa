"""Reads on customers for views and admin."""

from typing import Any

from django.http import HttpRequest

from users.models import Customer, ReconcileRun

# Putting parked sync records back in the queue (admin actions, staff API).
RETRY_SYNC_PERMISSION = "users.retry_syncrecord"
LOG_IN_AS_CUSTOMER_PERMISSION = "users.log_in_as_customer"


def can_retry_sync(user: Any) -> bool:
    """May this staff member retry parked SolusIO changes?"""
    return bool(user and user.is_active and user.is_staff and user.has_perm(RETRY_SYNC_PERMISSION))


def customer_for_request(request: HttpRequest) -> Customer | None:
    """The customer signed in to the customer pages, or None (anonymous, or a login that
    is not a customer's, such as a staff member's)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    return Customer.objects.select_related("currency").filter(user_id=user.pk).first()


def last_reconcile_run() -> ReconcileRun | None:
    """The latest reconciliation that was asked for (whatever its state)."""
    return ReconcileRun.objects.order_by("-id").first()
