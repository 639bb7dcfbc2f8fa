"""Staff REST API for customers (DESIGN §8). Thin: validation in users.serializers, writes
in users.services, the pricing preview in pricing.services."""

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bridge.api import model_permission
from bridge.api_tools import ProtectedDestroyMixin
from pricing.serializers import TokenPricingAnswerSerializer
from pricing.services import NOT_FOUND, pricing_answer
from users import services, sync
from users.filters import CustomerFilter, SyncRecordFilter
from users.models import Customer, SyncRecord
from users.selectors import can_retry_sync
from users.serializers import (
    CountSerializer,
    CustomerSerializer,
    SyncRecordSerializer,
)


class CustomerViewSet(ProtectedDestroyMixin, viewsets.ModelViewSet):
    """Customers: the billing system's users; the id is SolusIO's billing_user_id."""

    queryset = Customer.objects.select_related("currency", "solusio").prefetch_related("discounts")
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter

    def delete_instance(self, instance: Customer) -> None:  # type: ignore[override]
        # Through the service, so the SolusIO user is deleted too (outbox).
        services.delete_customer(customer=instance, reason="deleted through the API")

    @extend_schema(
        summary="Queue the customer's whole state for SolusIO again",
        request=None,
        responses={202: CountSerializer},
    )
    @action(detail=True, methods=["post"], permission_classes=[model_permission("change")])
    def resync(self, request: Request, pk: str | None = None) -> Response:
        customer = self.get_object()
        services.resync_customer(customer_id=customer.pk, reason=f"resync by {request.user}")
        return Response({"count": 1}, status=202)

    @extend_schema(
        summary="Preview the customer's GetTokenPricing answer",
        description=(
            "Exactly the body POST /api/solusio answers SolusIO for this customer, numbers "
            "as exact JSON numbers."
        ),
        responses={200: TokenPricingAnswerSerializer},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="token-pricing",
        permission_classes=[model_permission("view")],
    )
    def token_pricing(self, request: Request, pk: str | None = None) -> HttpResponse:
        customer = self.get_object()
        # The same bytes (and cache entry) GetTokenPricing serves: a DRF Response would
        # render the Decimals differently.
        body = pricing_answer(customer.pk)
        if body == NOT_FOUND:  # deleted since get_object()
            raise NotFound()
        return HttpResponse(body, content_type="application/json")


class CanRetrySync(BasePermission):
    """Retrying a parked record needs users.retry_syncrecord (view or add is not enough)."""

    message = "Retrying parked sync records needs the users.retry_syncrecord permission."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return can_retry_sync(request.user)


class SyncRecordViewSet(viewsets.ReadOnlyModelViewSet):
    """The SolusIO sync outbox: each customer change and whether it reached SolusIO."""

    queryset = SyncRecord.objects.order_by("-id")
    serializer_class = SyncRecordSerializer
    filterset_class = SyncRecordFilter

    @extend_schema(
        summary="Retry a parked record (after fixing what SolusIO refused)",
        request=None,
        responses={202: CountSerializer},
    )
    @action(detail=True, methods=["post"], permission_classes=[CanRetrySync])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        record = self.get_object()
        return Response({"count": sync.retry_parked(record_ids=[record.pk])}, status=202)
