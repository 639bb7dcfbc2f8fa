"""Staff REST API for prices (DESIGN §8): currencies, discounts, tax rules, plans and the
pricing settings. Thin: validation is in pricing.serializers, cache invalidation in
pricing.signals."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, viewsets

from bridge.api_tools import ProtectedDestroyMixin
from pricing.models import Currency, Discount, Plan, PricingSettings, TaxRule
from pricing.serializers import (
    CurrencySerializer,
    DiscountSerializer,
    PlanSerializer,
    PricingSettingsSerializer,
    TaxRuleSerializer,
)


class CurrencyViewSet(ProtectedDestroyMixin, viewsets.ModelViewSet):
    """Currencies and their token price (Step 1), looked up by ISO code."""

    queryset = Currency.objects.all()
    serializer_class = CurrencySerializer
    lookup_field = "code"
    lookup_value_regex = "[A-Za-z]{3}"

    def get_object(self) -> Currency:
        self.kwargs[self.lookup_field] = self.kwargs[self.lookup_field].upper()
        return super().get_object()


class DiscountViewSet(viewsets.ModelViewSet):
    """Discounts: a multiplier on the token price, optionally time-limited."""

    queryset = Discount.objects.all()
    serializer_class = DiscountSerializer


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "country", str, description="Only rules for this ISO country code ('' = global)."
            )
        ]
    )
)
class TaxRuleViewSet(viewsets.ModelViewSet):
    """Tax rules by country and region, applied in `order`."""

    queryset = TaxRule.objects.all()
    serializer_class = TaxRuleSerializer

    def get_queryset(self) -> QuerySet[TaxRule]:
        queryset = super().get_queryset()
        country = self.request.query_params.get("country")
        if self.action == "list" and country is not None:
            queryset = queryset.filter(country=country.strip().upper())
        return queryset


class PlanViewSet(viewsets.ModelViewSet):
    """SolusIO plans with their prices in tokens and the Step 2 price book."""

    queryset = Plan.objects.all()
    serializer_class = PlanSerializer


class PricingSettingsView(generics.RetrieveUpdateAPIView):
    """The pricing settings: one object, no id."""

    queryset = PricingSettings.objects.all()  # for the model permissions
    serializer_class = PricingSettingsSerializer

    def get_object(self) -> PricingSettings:
        return PricingSettings.load()
