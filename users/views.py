"""The customer pages under /account/: sign in, status, "Open control panel" (Step 9).

Thin: who the customer is comes from users.selectors, the token from users.sso.
"""

from typing import Any

from axes.utils import reset as axes_reset
from django import forms
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, SetPasswordMixin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from payments import selectors as payment_selectors
from users import passwords, services, sso
from users.decorators import customer_required
from users.models import Customer, language_choices


class CustomerLoginForm(AuthenticationForm):
    """E-mail and password; the login behind it is the customer's own (`customer:<id>`)."""

    username = forms.EmailField(
        label=_("E-mail"), widget=forms.EmailInput(attrs={"autofocus": True})
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _("Please enter a correct e-mail and password."),
    }

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


@never_cache
@require_safe
@customer_required
def account_home(request: HttpRequest, customer: Customer) -> HttpResponse:
    return render(
        request,
        "account/home.html",
        {
            "customer": customer,
            "language_form": LanguageForm(initial={"language": customer.language}),
            "balances": payment_selectors.balances(customer.pk),
            "step": payment_selectors.dunning_step(customer),
        },
    )


class LanguageForm(forms.Form):
    language = forms.ChoiceField(label=_("Language"), choices=language_choices)


@never_cache
@require_POST
@customer_required
def set_language(request: HttpRequest, customer: Customer) -> HttpResponse:
    """The customer's own choice of language (Customer.language), as staff can set it."""
    form = LanguageForm(request.POST)
    if form.is_valid():
        services.update_customer(
            customer=customer,
            changes={"language": form.cleaned_data["language"]},
            reason="language chosen in the portal",
        )
    return redirect("account-home")


@never_cache
@require_POST
@customer_required
def open_control_panel(request: HttpRequest, customer: Customer) -> HttpResponse:
    try:
        url = sso.login_url(customer=customer, remote_addr=request.META.get("REMOTE_ADDR"))
    except sso.LoginRefused as refused:
        return render(
            request,
            "account/refused.html",
            {"customer": customer, "message": refused.message},
            status=403 if refused.outcome in ("suspended", "locked") else 503,
        )
    return HttpResponseRedirect(url)


# --- "Forgot password": by e-mail, with Django's token generator (users.passwords) ---------


class ForgotPasswordForm(forms.Form):
    email = forms.EmailField(
        label=_("E-mail"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )


class ResetPasswordForm(SetPasswordMixin, forms.Form):
    """The key from the e-mailed link (filled in from the link by the page), and a new
    password checked by AUTH_PASSWORD_VALIDATORS."""

    key = forms.CharField(
        label=_("Reset code (from the e-mail)"),
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    new_password1, new_password2 = SetPasswordMixin.create_password_fields(
        label1=_("New password"), label2=_("New password again")
    )
    target: passwords.ResetTarget | None = None

    def clean_key(self) -> str:
        key = self.cleaned_data["key"]
        self.target = passwords.check_reset_key(key)
        if self.target is None:
            raise forms.ValidationError(
                _(
                    "This reset link is not valid any more (used, expired or mistyped). "
                    "Ask for a new one."
                ),
                code="invalid_key",
            )
        return key

    def clean(self) -> dict[str, Any] | None:
        self.validate_passwords("new_password1", "new_password2")
        if self.target is not None:
            self.validate_password_for_user(self.target.user, "new_password2")
        return super().clean()


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def forgot_password(request: HttpRequest) -> HttpResponse:
    form = ForgotPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # The bridge's public address when staff set one: links never follow the Host a
        # client sent (ALLOWED_HOSTS bounds it otherwise).
        public = settings.BRIDGE_PUBLIC_URL.rstrip("/")
        path = reverse("account-reset")
        passwords.request_reset(
            email=form.cleaned_data["email"],
            reset_url=public + path if public else request.build_absolute_uri(path),
        )
        # The same answer whether the address is a customer's or not.
        return redirect("account-forgot-sent")
    return render(request, "account/forgot.html", {"form": form})


@require_safe
def forgot_password_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "account/forgot_sent.html")


@never_cache
@csrf_protect
@sensitive_post_parameters("key", "new_password1", "new_password2")
@require_http_methods(["GET", "HEAD", "POST"])
def reset_password(request: HttpRequest) -> HttpResponse:
    form = ResetPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        assert form.target is not None
        services.set_customer_password(
            customer_id=form.target.customer.pk, password=form.cleaned_data["new_password1"]
        )
        # Proven by the e-mail: failed guesses at the old password no longer lock the account.
        axes_reset(username=services.portal_username(form.target.customer.pk))
        return redirect(f"{reverse('account-login')}?reset=done")
    return render(request, "account/reset.html", {"form": form})
