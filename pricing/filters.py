"""The staff API's tax-rule list filter (django-filter)."""

from django.db.models import QuerySet
from django_filters import rest_framework as filters

from bridge.filters import CodeFilter
from pricing.models import TaxRule


class TaxRuleFilter(filters.FilterSet):
    country = CodeFilter(
        length=2, help_text="Only rules for this ISO country code; empty: the global rules."
    )

    class Meta:
        model = TaxRule
        fields: list[str] = []

    def filter_queryset(self, queryset: QuerySet[TaxRule]) -> QuerySet[TaxRule]:
        # `?country=` (present, empty) asks for the global rules; django-filter would
        # read an empty value as "no filter".
        if self.data.get("country", None) == "":
            return super().filter_queryset(queryset).filter(country="")
        return super().filter_queryset(queryset)
