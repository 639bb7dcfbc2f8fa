"""The customer pages under /account/: sign in, status, "Open control panel" (Step 9).

Thin: who the customer is comes from users.selectors, the token from users.sso.
"""

from typing import Any

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from users import sso
from users.models import Customer
from users.selectors import customer_for_request


class CustomerLoginForm(AuthenticationForm):
    """E-mail and password; the login behind it is the customer's own (`customer:<id>`)."""

    username = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True}))

    def clean(self) -> dict[str, Any]:
        email = self.cleaned_data.get("username")
        if email:
            customer = Customer.objects.filter(email__iexact=email, user__isnull=False).first()
            # An unknown e-mail fails exactly like a wrong password (no account probing).
            self.cleaned_data["username"] = (
                customer.user.get_username() if customer and customer.user else email
            )
        return super().clean()


class AccountLoginView(auth_views.LoginView):
    template_name = "account/login.html"
    authentication_form = CustomerLoginForm
    redirect_authenticated_user = True
    next_page = reverse_lazy("account-home")  # type: ignore[assignment]


class AccountLogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("account-login")  # type: ignore[assignment]


def _need_customer(request: HttpRequest) -> Customer | HttpResponse:
    customer = customer_for_request(request)
    if customer is not None:
        return customer
    if request.user.is_authenticated:
        # A staff login is not a customer: staff use "log in as customer" in the admin.
        return render(request, "account/not_a_customer.html", status=403)
    return redirect(f"{reverse_lazy('account-login')}?next={request.path}")


@never_cache
@require_safe
def account_home(request: HttpRequest) -> HttpResponse:
    found = _need_customer(request)
    if isinstance(found, HttpResponse):
        return found
    return render(request, "account/home.html", {"customer": found})


@never_cache
@require_POST
def open_control_panel(request: HttpRequest) -> HttpResponse:
    found = _need_customer(request)
    if isinstance(found, HttpResponse):
        return found
    try:
        url = sso.login_url(customer=found, remote_addr=request.META.get("REMOTE_ADDR"))
    except sso.LoginRefused as refused:
        return render(
            request,
            "account/refused.html",
            {"customer": found, "message": refused.message},
            status=403 if refused.outcome in ("suspended", "locked") else 503,
        )
    return HttpResponseRedirect(url)
