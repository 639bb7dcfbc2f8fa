"""Staff's view of online payment: webhook events (failed payments among them), automatic
collection attempts and the saved Stripe customers. Read-only: only Stripe and the worker
write these. Registered from PaymentsConfig.ready, so payments/admin.py stays the rest's."""

from django.contrib import admin

from bridge.admin_tools import ReadOnlyAdminMixin
from payments.models import CollectionAttempt, StripeCustomer, StripeEvent


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("received_at", "type", "state", "invoice", "payment", "note")
    list_filter = ("state", "type")
    search_fields = ("=event_id", "=invoice__number")
    list_select_related = ("invoice", "payment")
    exclude = ("payload",)  # the raw event carries the customer's details; the note suffices
    date_hierarchy = "received_at"


@admin.register(CollectionAttempt)
class CollectionAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at", "invoice", "attempt", "amount", "currency", "state", "error",
        "next_attempt_at",
    )  # fmt: skip
    list_filter = ("state",)
    search_fields = ("=invoice__number", "=payment_intent_id")
    list_select_related = ("invoice",)


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("customer", "stripe_customer_id", "payment_method_type", "updated_at")
    search_fields = ("=customer__id", "customer__email", "=stripe_customer_id")
    list_select_related = ("customer",)
    # Staff may forget a saved method (the customer withdrew consent): no more charges.
    keep_permissions = ("delete",)
