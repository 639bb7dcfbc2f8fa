"""Staff REST API routes (/api/v1/). Each app registers its viewsets here."""

from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase
from django.urls import path, reverse
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from payments.api import PaymentViewSet, RefundViewSet, ReminderViewSet
from payments.bank.api import BankEntryViewSet, BankStatementViewSet
from pricing.api import (
    CurrencyViewSet,
    DiscountViewSet,
    PlanViewSet,
    PricingSettingsView,
    TaxRuleViewSet,
)
from usage.api import (
    BillingSettingsView,
    CloseRunViewSet,
    CreditNoteViewSet,
    DunningEventViewSet,
    InvoiceViewSet,
    UsageRecordViewSet,
)
from users.api import CustomerViewSet, SyncRecordViewSet

# Routes outside the router that the API root lists too: link name -> URL name.
ROOT_EXTRAS = {
    "pricing-settings": "pricing-settings",
    "billing-settings": "billing-settings",
    "schema": "api-schema",
    "docs": "api-docs",
    "docs/redoc": "api-redoc",
}


class Router(DefaultRouter):
    """DRF's router, whose API root lists every route that takes no id: each viewset's
    list and list-level actions (invoices/upcoming), the singletons and the docs. The
    stock root lists only the lists, and silently drops a name that does not resolve."""

    def get_api_root_view(self, api_urls: Any = None) -> Any:
        links: dict[str, str] = {}
        for prefix, viewset, basename in self.registry:
            links[prefix] = f"{basename}-list"
            extra_actions: list[Any] = viewset.get_extra_actions()
            for action in extra_actions:
                if not action.detail:
                    links[f"{prefix}/{action.url_path}"] = f"{basename}-{action.url_name}"
        return self.APIRootView.as_view(api_root_dict={**links, **ROOT_EXTRAS})


def for_browsers(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """A docs page is opened in a browser: without a session, the admin's login and back
    (signed-in staff without a permission still get the API's 403)."""

    def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return view(request, *args, **kwargs)

    return page


router = Router()
router.register("currencies", CurrencyViewSet, basename="currency")
router.register("discounts", DiscountViewSet, basename="discount")
router.register("tax-rules", TaxRuleViewSet, basename="taxrule")
router.register("plans", PlanViewSet, basename="plan")
router.register("customers", CustomerViewSet, basename="customer")
router.register("sync-records", SyncRecordViewSet, basename="syncrecord")
router.register("invoices", InvoiceViewSet, basename="invoice")
router.register("credit-notes", CreditNoteViewSet, basename="creditnote")
router.register("usage", UsageRecordViewSet, basename="usage")
router.register("dunning-events", DunningEventViewSet, basename="dunningevent")
router.register("payments", PaymentViewSet, basename="payment")
router.register("refunds", RefundViewSet, basename="refund")
router.register("reminders", ReminderViewSet, basename="reminder")
router.register("bank-statements", BankStatementViewSet, basename="bankstatement")
router.register("bank-entries", BankEntryViewSet, basename="bankentry")
router.register("close-runs", CloseRunViewSet, basename="closerun")

urlpatterns = [
    # A singleton: no list, no id (the router only builds list/detail routes).
    path("pricing-settings/", PricingSettingsView.as_view(), name="pricing-settings"),
    path("billing-settings/", BillingSettingsView.as_view(), name="billing-settings"),
    # Readable by whoever may read the schema (SERVE_PERMISSIONS); scripts from the sidecar.
    path(
        "docs/",
        for_browsers(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path(
        "docs/redoc/",
        for_browsers(
            SpectacularRedocView.as_view(
                url_name="api-schema", template_name="bridge/api_redoc.html"
            )
        ),
        name="api-redoc",
    ),
    *router.urls,
]
