"""Staff REST API for invoices and usage (DESIGN §8). Thin: state changes are
usage.services; the error shape and permissions are bridge.api's."""

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from bridge.api import StaffModelPermissions
from bridge.api_tools import Conflict
from solusio.errors import SolusIOError
from usage import emails, services
from usage.exports import invoices_csv
from usage.models import BillingSettings, DunningEvent, Invoice, InvoiceStatus, UsageRecord
from usage.pdf import invoice_filename, render_invoice_pdf
from usage.serializers import (
    BillingSettingsSerializer,
    DunningEventSerializer,
    InvoiceDetailSerializer,
    InvoiceFilterSerializer,
    InvoiceSerializer,
    UpcomingInvoiceSerializer,
    UsageRecordSerializer,
)
from users.models import Customer


class InvoicePermissions(StaffModelPermissions):
    """Actions (issue, void, mark paid, regenerate) are POSTs that change an invoice."""

    perms_map = {**StaffModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class SolusIOUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "SolusIO did not answer; try again later."


@extend_schema_view(list=extend_schema(parameters=[InvoiceFilterSerializer]))
class InvoiceViewSet(viewsets.ReadOnlyModelViewSet):
    """Invoices: one per customer and period. Issued, paid and void invoices are frozen."""

    queryset = Invoice.objects.select_related("customer")
    permission_classes = [InvoicePermissions]

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return InvoiceSerializer if self.action in ("list", "export") else InvoiceDetailSerializer

    def get_queryset(self) -> QuerySet[Invoice]:
        queryset = super().get_queryset()
        if self.action == "retrieve":
            return queryset.prefetch_related("lines")
        if self.action not in ("list", "export"):
            return queryset
        params = InvoiceFilterSerializer(data=self.request.query_params.dict())
        params.is_valid(raise_exception=True)
        f = params.validated_data
        if f.get("period"):
            year, month = f["period"].split("-")
            queryset = queryset.filter(period__year=int(year), period__month=int(month))
        if "status" in f:
            queryset = queryset.filter(status=f["status"])
        if "currency" in f:
            queryset = queryset.filter(currency=f["currency"].upper())
        if "customer" in f:
            queryset = queryset.filter(customer_id=f["customer"])
        if f.get("overdue"):
            days = BillingSettings.load().dunning_days
            queryset = queryset.filter(
                status=InvoiceStatus.ISSUED, issued_at__lte=timezone.now() - timedelta(days=days)
            )
        return queryset.order_by("-period", "customer_id")

    def _act(self, change: Any) -> Response:
        invoice = self.get_object()
        try:
            change(invoice.pk)
        except services.InvoiceStateError as exc:
            raise Conflict(str(exc)) from exc
        except services.CloseError as exc:
            raise Conflict(str(exc)) from exc
        fresh = Invoice.objects.filter(pk=invoice.pk).prefetch_related("lines").first()
        if fresh is None:  # regenerated away: the customer has no usage left in the period
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(InvoiceDetailSerializer(fresh).data)

    @extend_schema(request=None, responses=InvoiceDetailSerializer, summary="Issue a draft")
    @action(detail=True, methods=["post"])
    def issue(self, request: Request, pk: str | None = None) -> Response:
        return self._act(lambda i: services.issue_invoice(invoice_id=i))

    @extend_schema(request=None, responses=InvoiceDetailSerializer, summary="Void (keeps number)")
    @action(detail=True, methods=["post"])
    def void(self, request: Request, pk: str | None = None) -> Response:
        return self._act(lambda i: services.void_invoice(invoice_id=i))

    @extend_schema(request=None, responses=InvoiceDetailSerializer, summary="Mark paid")
    @action(detail=True, methods=["post"], url_path="mark-paid")
    def mark_paid(self, request: Request, pk: str | None = None) -> Response:
        return self._act(lambda i: services.mark_paid(invoice_id=i))

    @extend_schema(request=None, responses=InvoiceDetailSerializer, summary="Regenerate a draft")
    @action(detail=True, methods=["post"])
    def regenerate(self, request: Request, pk: str | None = None) -> Response:
        return self._act(lambda i: services.regenerate_invoice(invoice_id=i))

    @extend_schema(
        request=None, responses=InvoiceDetailSerializer, summary="E-mail the invoice (again)"
    )
    @action(detail=True, methods=["post"], url_path="resend-email")
    def resend_email(self, request: Request, pk: str | None = None) -> Response:
        def resend(invoice_id: int) -> None:
            if not emails.resend(invoice_ids=[invoice_id]):
                raise services.InvoiceStateError("only issued or paid invoices are e-mailed")

        return self._act(resend)

    @extend_schema(responses={(200, "application/pdf"): bytes}, summary="The invoice as PDF")
    @action(detail=True, methods=["get"])
    def pdf(self, request: Request, pk: str | None = None) -> HttpResponse:
        invoice = self.get_object()
        response = HttpResponse(render_invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_filename(invoice)}.pdf"'
        return response

    @extend_schema(
        parameters=[InvoiceFilterSerializer],
        responses={(200, "text/csv"): str},
        summary="The filtered invoices as CSV, one row per line",
    )
    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> HttpResponse:
        rows = self.get_queryset().prefetch_related("lines")
        response = HttpResponse(invoices_csv(rows), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="invoices.csv"'
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter("customer", int, required=True),
            OpenApiParameter(
                "live", bool, description="Read SolusIO now instead of the last hourly pull."
            ),
        ],
        responses=UpcomingInvoiceSerializer,
        summary="What the current month costs a customer so far (nothing stored)",
    )
    @action(detail=False, methods=["get"])
    def upcoming(self, request: Request) -> Response:
        raw = request.query_params.get("customer", "")
        if not raw.isdigit():
            raise exceptions.ValidationError({"customer": ["A customer id is required."]})
        if not Customer.objects.filter(pk=int(raw)).exists():
            raise exceptions.NotFound("No such customer.")
        live = request.query_params.get("live") in ("1", "true")
        try:
            preview = services.preview_invoice(customer_id=int(raw), live=live)
        except SolusIOError as exc:
            raise SolusIOUnavailable() from exc
        data = UpcomingInvoiceSerializer.from_draft(
            int(raw), preview.period, preview.as_of, preview.draft
        )
        return Response(UpcomingInvoiceSerializer(data).data)


class UsageRecordViewSet(viewsets.ReadOnlyModelViewSet):
    """Raw usage rows as pulled from SolusIO; `?orphan=true` lists the unclaimed ones."""

    queryset = UsageRecord.objects.all()
    serializer_class = UsageRecordSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("orphan", bool),
            OpenApiParameter("period", str, description="e.g. 2026-10"),
            OpenApiParameter("customer", int),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[UsageRecord]:
        queryset = super().get_queryset()
        q = self.request.query_params
        if q.get("orphan") in ("true", "1"):
            queryset = queryset.filter(customer__isnull=True)
        elif q.get("orphan") in ("false", "0"):
            queryset = queryset.filter(customer__isnull=False)
        period = q.get("period", "")
        if period:
            year, _, month = period.partition("-")
            if not (year.isdigit() and month.isdigit()):
                raise exceptions.ValidationError({"period": ["Use YYYY-MM, e.g. 2026-10."]})
            queryset = queryset.filter(period__year=int(year), period__month=int(month))
        if q.get("customer", "").isdigit():
            queryset = queryset.filter(customer_id=int(q["customer"]))
        return queryset.order_by("period", "server_id", "item", "started_at")


class BillingSettingsView(generics.RetrieveUpdateAPIView):
    """The cycle settings (auto-issue, dunning days): one object, no id."""

    queryset = BillingSettings.objects.all()  # for the model permissions
    serializer_class = BillingSettingsSerializer

    def get_object(self) -> BillingSettings:
        return BillingSettings.load()


class DunningEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Dunning's steps: suspensions and reactivations, newest first; `?customer=ID`."""

    queryset = DunningEvent.objects.all()
    serializer_class = DunningEventSerializer

    @extend_schema(parameters=[OpenApiParameter("customer", int)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[DunningEvent]:
        queryset = super().get_queryset()
        customer = self.request.query_params.get("customer", "")
        if customer.isdigit():
            queryset = queryset.filter(customer_id=int(customer))
        return queryset
