"""Staff REST API for prices (DESIGN §8): currencies, discounts, tax rules, plans and the
pricing settings. Thin: validation is in pricing.serializers, cache invalidation in
pricing.signals."""

from rest_framework import viewsets

from bridge.api_tools import ProtectedDestroyMixin, SingletonView
from pricing.filters import TaxRuleFilter
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


class TaxRuleViewSet(viewsets.ModelViewSet):
    """Tax rules by country and region, applied in `order`."""

    queryset = TaxRule.objects.all()
    serializer_class = TaxRuleSerializer
    filterset_class = TaxRuleFilter


class PlanViewSet(viewsets.ModelViewSet):
    """SolusIO plans with their prices in tokens and the Step 2 price book."""

    queryset = Plan.objects.all()
    serializer_class = PlanSerializer


class PricingSettingsView(SingletonView):
    """The pricing settings: one object, no id."""

    queryset = PricingSettings.objects.all()
    serializer_class = PricingSettingsSerializer
