"""Staff REST API routes (/api/v1/). Each app registers its viewsets here."""

from typing import Any

from django.urls import path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from pricing.api import (
    CurrencyViewSet,
    DiscountViewSet,
    PlanViewSet,
    PricingSettingsView,
    TaxRuleViewSet,
)
from usage.api import (
    BillingSettingsView,
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


router = Router()
router.register("currencies", CurrencyViewSet, basename="currency")
router.register("discounts", DiscountViewSet, basename="discount")
router.register("tax-rules", TaxRuleViewSet, basename="taxrule")
router.register("plans", PlanViewSet, basename="plan")
router.register("customers", CustomerViewSet, basename="customer")
router.register("sync-records", SyncRecordViewSet, basename="syncrecord")
router.register("invoices", InvoiceViewSet, basename="invoice")
router.register("usage", UsageRecordViewSet, basename="usage")
router.register("dunning-events", DunningEventViewSet, basename="dunningevent")

urlpatterns = [
    # A singleton: no list, no id (the router only builds list/detail routes).
    path("pricing-settings/", PricingSettingsView.as_view(), name="pricing-settings"),
    path("billing-settings/", BillingSettingsView.as_view(), name="billing-settings"),
    # Readable by whoever may read the schema (SERVE_PERMISSIONS); scripts from the sidecar.
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "docs/redoc/",
        SpectacularRedocView.as_view(url_name="api-schema", template_name="bridge/api_redoc.html"),
        name="api-redoc",
    ),
    *router.urls,
]
