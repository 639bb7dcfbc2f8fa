"""The staff API's invoice, usage and dunning list filters (django-filter)."""

from datetime import date
from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema_field

from bridge.filters import BooleanFilter, CodeFilter, IdFilter
from usage import selectors
from usage.models import (
    BillingSettings,
    DunningEvent,
    Invoice,
    InvoiceStatus,
    UsageItemKind,
    UsageRecord,
)
from usage.rules import parse_period
from users.models import Customer


def month_of(text: str) -> date:
    """'2026-10' → date(2026, 10, 1), how `period` columns store a month; ValueError else."""
    return parse_period(text, "UTC").month


class MonthField(forms.CharField):
    def to_python(self, value: Any) -> date | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        try:
            return month_of(text)
        except ValueError:
            raise forms.ValidationError("Use YYYY-MM, e.g. 2026-10.") from None


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^\d{4}-\d{2}$",
        "example": "2026-10",
        "description": "The billing month, YYYY-MM.",
    }
)
class MonthFilter(filters.Filter):
    """A `period` (the month's first day) given as YYYY-MM."""

    field_class = MonthField


class InvoiceFilter(filters.FilterSet):
    period = MonthFilter()
    status = filters.ChoiceFilter(choices=InvoiceStatus.choices)
    currency = CodeFilter(length=3, help_text="ISO 4217 code, any case.")
    customer = IdFilter(field_name="customer_id")
    overdue = BooleanFilter(
        method="filter_overdue",
        help_text="true: issued, not paid, past the dunning days; false: all others.",
    )

    class Meta:
        model = Invoice
        fields: list[str] = []

    def filter_overdue(self, queryset: QuerySet[Invoice], name: str, value: bool) -> Any:
        days = BillingSettings.load().dunning_days
        overdue = selectors.overdue_invoices(timezone.now(), days, within=queryset)
        return overdue if value else queryset.exclude(pk__in=overdue.values("pk"))


class UsageRecordFilter(filters.FilterSet):
    orphan = BooleanFilter(
        field_name="customer", lookup_expr="isnull", help_text="Usage of no known customer."
    )
    unknown_kind = BooleanFilter(
        method="filter_unknown_kind",
        help_text="Usage of a kind the bridge cannot price (it holds the invoice).",
    )
    period = MonthFilter()
    customer = IdFilter(field_name="customer_id")

    class Meta:
        model = UsageRecord
        fields: list[str] = []

    def filter_unknown_kind(
        self, queryset: QuerySet[UsageRecord], name: str, value: bool
    ) -> QuerySet[UsageRecord]:
        known = Q(item__in=UsageItemKind.values)
        return queryset.exclude(known) if value else queryset.filter(known)


class DunningEventFilter(filters.FilterSet):
    customer = IdFilter(field_name="customer_id")

    class Meta:
        model = DunningEvent
        fields: list[str] = []


class UpcomingFilter(filters.FilterSet):
    """The month-so-far preview's query: one customer, and whether to read SolusIO live."""

    customer = IdFilter(field_name="pk", required=True)
    live = BooleanFilter(method="no_filter", help_text="Read SolusIO now, not the last pull.")

    class Meta:
        model = Customer
        fields: list[str] = []

    def no_filter(self, queryset: QuerySet[Customer], name: str, value: bool) -> Any:
        return queryset  # an option of the preview, not a filter
