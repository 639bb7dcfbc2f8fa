"""Staff REST API for payments (issue 14 §1). Thin: recording and refunding are
payments.services; the error shape and permissions are bridge.api's."""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from bridge.api import StaffModelPermissions
from bridge.api_tools import Conflict
from payments import services
from payments.exports import payments_csv
from payments.filters import PaymentFilter, ReminderFilter
from payments.models import Allocation, Payment, Reminder
from payments.serializers import (
    PaymentSerializer,
    RecordPaymentSerializer,
    RefundSerializer,
    ReminderSerializer,
)
from usage.models import CreditNote


def _recorded(record: Any) -> Response:
    """201 with the new payment; 200 with the one already recorded under the reference."""
    try:
        recorded = record()
    except services.PaymentConflict as exc:
        raise Conflict(str(exc)) from exc
    except services.PaymentError as exc:
        raise exceptions.ValidationError({"non_field_errors": [str(exc)]}) from exc
    payment = payments_with_allocations().get(pk=recorded.payment.pk)
    return Response(
        PaymentSerializer(payment).data,
        status=status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK,
    )


def _staff(request: Request) -> AbstractBaseUser | None:
    user = request.user
    return user if isinstance(user, AbstractBaseUser) else None


def payments_with_allocations() -> QuerySet[Payment]:
    return Payment.objects.select_related("customer", "credit_note").prefetch_related(
        Prefetch("allocations", queryset=Allocation.objects.select_related("invoice"))
    )


class PaymentViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Money received (and refunds paid out, negative). Recorded, never edited: a refund or
    voiding the invoice corrects one."""

    queryset = payments_with_allocations().order_by("-received_at", "-id")
    serializer_class = PaymentSerializer
    permission_classes = [StaffModelPermissions]  # list/read: view; record: add
    filterset_class = PaymentFilter

    @extend_schema(
        request=RecordPaymentSerializer,
        responses={
            201: PaymentSerializer,
            200: OpenApiResponse(
                PaymentSerializer, description="Already recorded under this reference"
            ),
            409: OpenApiResponse(
                description="The reference is recorded as another payment (stable error shape)"
            ),
        },
        summary="Record a payment (settles the invoice named, then the oldest open ones)",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = RecordPaymentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        return _recorded(
            lambda: services.record_payment(
                customer_id=data["customer"],
                amount=data["amount"],
                currency=data["currency"],
                method=data["method"],
                received_at=data["received_at"],
                reference=data.get("reference", ""),
                invoice_id=data.get("invoice"),
                note=data.get("note", ""),
                user=_staff(request),
            )
        )

    @extend_schema(
        filters=True,
        responses={(200, "text/csv"): str},
        summary="The filtered payments as CSV, one row per payment",
    )
    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> HttpResponse:
        rows = self.filter_queryset(self.get_queryset())
        response = HttpResponse(payments_csv(rows), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="payments.csv"'
        return response


class RefundPermissions(StaffModelPermissions):
    """Reading refunds is reading payments; paying money back is its own grant."""

    perms_map = {**StaffModelPermissions.perms_map, "POST": ["payments.refund_payment"]}


class RefundViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Refunds: credit paid back to customers against a credit note, as negative payments
    (also in /payments/)."""

    queryset = payments_with_allocations().filter(amount__lt=0).order_by("-received_at", "-id")
    serializer_class = PaymentSerializer
    permission_classes = [RefundPermissions]
    filterset_class = PaymentFilter

    @extend_schema(
        request=RefundSerializer,
        responses={
            201: PaymentSerializer,
            200: OpenApiResponse(
                PaymentSerializer, description="Already recorded under this reference"
            ),
        },
        summary="Refund credit to the customer against a credit note (a negative payment)",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = RefundSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if not CreditNote.objects.filter(pk=data["credit_note"]).exists():
            raise exceptions.ValidationError({"credit_note": ["No such credit note."]})
        return _recorded(
            lambda: services.refund(
                credit_note_id=data["credit_note"],
                amount=data["amount"],
                method=data["method"],
                received_at=data.get("received_at") or timezone.now(),
                reference=data.get("reference", ""),
                note=data.get("note", ""),
                user=_staff(request),
            )
        )


class ReminderViewSet(viewsets.ReadOnlyModelViewSet):
    """Payment reminders the dunning schedule wrote: one per open invoice and step, with
    their delivery, newest first."""

    queryset = Reminder.objects.select_related("invoice").order_by("-created_at", "-id")
    serializer_class = ReminderSerializer
    filterset_class = ReminderFilter
