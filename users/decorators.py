"""The customer portal's gate, shared by every page under /account/."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation

from users.models import Customer
from users.selectors import customer_for_request

CustomerView = Callable[..., HttpResponse]


def customer_required(view: CustomerView) -> Callable[..., HttpResponse]:
    """Run `view(request, customer, ...)` for a signed-in customer. Anyone else goes to the
    portal's sign-in; a signed-in login that is not a customer's (staff) gets a 403 page,
    since staff reach a customer's panel through "Log in as customer" in the admin.

    The customer's pages are in the customer's language (Customer.language), whatever the
    browser asks for; the other portal pages follow the browser (LocaleMiddleware)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        customer: Customer | None = customer_for_request(request)
        if customer is not None:
            with translation.override(customer.language):
                request.LANGUAGE_CODE = translation.get_language()
                response = view(request, customer, *args, **kwargs)
            # LocaleMiddleware keeps a Content-Language already set.
            response.headers["Content-Language"] = customer.language
            return response
        if request.user.is_authenticated:
            return render(request, "account/not_a_customer.html", status=403)
        return redirect_to_login(request.get_full_path(), reverse("account-login"))

    return wrapped
