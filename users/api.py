"""Staff REST API for customers (DESIGN §8). Thin: validation in users.serializers, writes
in users.services, the pricing preview in pricing.services."""

from django.db.models import Q, QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from pricing.api import ProtectedDestroyMixin
from pricing.serializers import TokenPricingAnswerSerializer
from pricing.services import NOT_FOUND, pricing_answer
from users.models import Customer
from users.serializers import CustomerFilterSerializer, CustomerSerializer


@extend_schema_view(list=extend_schema(parameters=[CustomerFilterSerializer]))
class CustomerViewSet(ProtectedDestroyMixin, viewsets.ModelViewSet):
    """Customers: the billing system's users; the id is SolusIO's billing_user_id."""

    queryset = Customer.objects.select_related("currency").prefetch_related("discounts")
    serializer_class = CustomerSerializer

    def get_queryset(self) -> QuerySet[Customer]:
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        params = CustomerFilterSerializer(data=self.request.query_params.dict())
        params.is_valid(raise_exception=True)
        filters = params.validated_data
        if "status" in filters:
            queryset = queryset.filter(status=filters["status"])
        if "currency" in filters:
            queryset = queryset.filter(currency_id=filters["currency"])
        if "country" in filters:
            queryset = queryset.filter(country=filters["country"])
        if "billing_exempt" in filters:
            queryset = queryset.filter(billing_exempt=filters["billing_exempt"])
        if filters.get("search"):
            term = filters["search"]
            queryset = queryset.filter(Q(email__icontains=term) | Q(name__icontains=term))
        return queryset

    @extend_schema(
        summary="Preview the customer's GetTokenPricing answer",
        description=(
            "Exactly the body POST /api/solusio answers SolusIO for this customer, numbers "
            "as exact JSON numbers."
        ),
        responses={200: TokenPricingAnswerSerializer},
    )
    @action(detail=True, methods=["get"], url_path="token-pricing")
    def token_pricing(self, request: Request, pk: str | None = None) -> HttpResponse:
        customer = self.get_object()
        # The same bytes (and cache entry) GetTokenPricing serves: a DRF Response would
        # render the Decimals differently.
        body = pricing_answer(customer.pk)
        if body == NOT_FOUND:  # deleted since get_object()
            raise NotFound()
        return HttpResponse(body, content_type="application/json")
