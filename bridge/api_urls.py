"""Staff REST API routes (/api/v1/). Each app registers its viewsets here."""

from django.urls import path
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
    CreditNoteViewSet,
    DunningEventViewSet,
    InvoiceViewSet,
    UsageRecordViewSet,
)
from users.api import CustomerViewSet, SyncRecordViewSet

router = DefaultRouter()
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

urlpatterns = [
    # A singleton: no list, no id (the router only builds list/detail routes).
    path("pricing-settings/", PricingSettingsView.as_view(), name="pricing-settings"),
    path("billing-settings/", BillingSettingsView.as_view(), name="billing-settings"),
    *router.urls,
]
