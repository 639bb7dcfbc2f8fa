"""The staff API's customer and sync-record list filters (django-filter)."""

from typing import Any

from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters

from bridge.filters import BooleanFilter, CodeFilter, IdFilter
from users.models import Customer, CustomerStatus, SyncRecord, SyncRecordState


class CustomerFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=CustomerStatus.choices)
    currency = CodeFilter(field_name="currency_id", length=3, help_text="ISO 4217 code.")
    country = CodeFilter(length=2, help_text="ISO 3166-1 alpha-2 code.")
    billing_exempt = BooleanFilter()
    search = filters.CharFilter(
        method="filter_search", help_text="Part of the e-mail address or name, any case."
    )

    class Meta:
        model = Customer
        fields: list[str] = []

    def filter_search(self, queryset: QuerySet[Customer], name: str, value: str) -> Any:
        return queryset.filter(Q(email__icontains=value) | Q(name__icontains=value))


class SyncRecordFilter(filters.FilterSet):
    state = filters.ChoiceFilter(choices=SyncRecordState.choices)
    customer = IdFilter(field_name="customer_id")

    class Meta:
        model = SyncRecord
        fields: list[str] = []
