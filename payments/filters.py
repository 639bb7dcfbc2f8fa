"""The staff API's payment list filters (django-filter), strict like bridge.filters'."""

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters

from bridge.filters import CodeFilter, IdFilter
from bridge.models import DeliveryState
from payments.models import Payment, PaymentMethod, Reminder


class PaymentFilter(filters.FilterSet):
    customer = IdFilter(field_name="customer_id")
    invoice = IdFilter(method="filter_invoice", help_text="Payments put (partly) on this invoice.")
    method = filters.ChoiceFilter(choices=PaymentMethod.choices)
    currency = CodeFilter(length=3, help_text="ISO 4217 code, any case.")
    received_from = filters.IsoDateTimeFilter(
        field_name="received_at", lookup_expr="gte", help_text="Received at or after (ISO 8601)."
    )
    received_before = filters.IsoDateTimeFilter(
        field_name="received_at", lookup_expr="lt", help_text="Received before (ISO 8601)."
    )
    refunds = filters.BooleanFilter(
        field_name="credit_note", lookup_expr="isnull", exclude=True, help_text="Only refunds."
    )

    class Meta:
        model = Payment
        fields: list[str] = []

    def filter_invoice(self, queryset: QuerySet[Payment], name: str, value: int) -> Any:
        return queryset.filter(pk__in=queryset.filter(allocations__invoice_id=value).values("pk"))


class ReminderFilter(filters.FilterSet):
    customer = IdFilter(field_name="customer_id")
    invoice = IdFilter(field_name="invoice_id")
    state = filters.ChoiceFilter(choices=DeliveryState.choices)

    class Meta:
        model = Reminder
        fields: list[str] = []
