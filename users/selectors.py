"""Reads on customers for views and admin."""

from django.http import HttpRequest

from users.models import Customer


def customer_for_request(request: HttpRequest) -> Customer | None:
    """The customer signed in to the customer pages, or None (anonymous, or a login that
    is not a customer's, such as a staff member's)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    return Customer.objects.select_related("currency").filter(user_id=user.pk).first()
