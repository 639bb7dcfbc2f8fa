"""Staff REST API for invoices and usage (DESIGN §8). Thin: state changes are
usage.invoice_states; the error shape and permissions are bridge.api's."""

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from bridge.api import StaffModelPermissions
from bridge.api_tools import Conflict, SingletonView
from bridge.filters import valid
from payments.selectors import with_paid
from solusio.errors import SolusIOError
from usage import cycle, emails, invoice_states, selectors, workflow
from usage.einvoice import documents
from usage.einvoice.data import EInvoiceError
from usage.exports import credit_notes_csv, invoices_csv
from usage.filters import DunningEventFilter, InvoiceFilter, UpcomingFilter, UsageRecordFilter
from usage.models import BillingSettings, CreditNote, DunningEvent, Invoice, UsageRecord
from usage.pdf import credit_note_filename, credit_note_pdf_response, invoice_filename
from usage.serializers import (
    BillingSettingsSerializer,
    CloseRunDetailSerializer,
    CloseRunSerializer,
    CorrectionSerializer,
    CreditNoteDetailSerializer,
    CreditNoteSerializer,
    CreditReasonSerializer,
    DunningEventSerializer,
    InvoiceDetailSerializer,
    InvoiceSerializer,
    UpcomingInvoiceSerializer,
    UsageRecordSerializer,
)
from users.models import Customer


class InvoicePermissions(StaffModelPermissions):
    """Actions (issue, void, mark paid, regenerate) are POSTs that change an invoice."""

    perms_map = {**StaffModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class CanCredit(permissions.BasePermission):
    """Voiding or correcting issues a credit note: staff with its add permission."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.is_staff
            and user.has_perm(f"{CreditNote._meta.app_label}.add_creditnote")
        )


class CanEmailCreditNotes(permissions.BasePermission):
    """Whoever may e-mail invoices (`change_invoice`, as the invoices' resend) may e-mail
    the credit notes they can see."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        label = CreditNote._meta.app_label
        return bool(
            user
            and user.is_authenticated
            and user.is_staff
            and user.has_perms([f"{label}.view_creditnote", f"{label}.change_invoice"])
        )


def _reason(request: Request) -> str:
    body = CreditReasonSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return str(body.validated_data["reason"])


class SolusIOUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "SolusIO did not answer; try again later."


class InvoiceViewSet(viewsets.ReadOnlyModelViewSet):
    """Invoices: one per customer and period. Issued, paid and void invoices are frozen."""

    queryset = Invoice.objects.select_related("customer").order_by("-period", "customer_id")
    permission_classes = [InvoicePermissions]
    filterset_class = InvoiceFilter

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return InvoiceSerializer if self.action in ("list", "export") else InvoiceDetailSerializer

    def get_queryset(self) -> QuerySet[Invoice]:
        queryset = with_paid(super().get_queryset())  # paid and balance in the same query
        if self.action == "retrieve":
            return queryset.prefetch_related("lines")
        return queryset

    def _act(self, change: Any) -> Response:
        invoice = self.get_object()
        try:
            change(invoice.pk)
        except invoice_states.InvoiceStateError as exc:
            raise Conflict(str(exc)) from exc
        except cycle.CloseError as exc:
            raise Conflict(str(exc)) from exc
        fresh = Invoice.objects.filter(pk=invoice.pk).prefetch_related("lines").first()
        if fresh is None:  # regenerated away: the customer has no usage left in the period
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(InvoiceDetailSerializer(fresh).data)

    @extend_schema(request=None, responses=InvoiceDetailSerializer, summary="Issue a draft")
    @action(detail=True, methods=["post"])
    def issue(self, request: Request, pk: str | None = None) -> Response:
        return self._act(lambda i: invoice_states.issue_invoice(invoice_id=i))

    @extend_schema(
        request=CreditReasonSerializer,
        responses=InvoiceDetailSerializer,
        summary="Void an issued invoice (keeps its number; issues a credit note)",
    )
    @action(detail=True, methods=["post"], permission_classes=[CanCredit])
    def void(self, request: Request, pk: str | None = None) -> Response:
        reason = _reason(request)
        return self._act(lambda i: invoice_states.void_invoice(invoice_id=i, reason=reason))

    @extend_schema(
        request=CreditReasonSerializer,
        responses=CorrectionSerializer,
        summary="Correct an issued invoice: a credit note and a new draft to issue",
    )
    @action(detail=True, methods=["post"], permission_classes=[CanCredit])
    def correct(self, request: Request, pk: str | None = None) -> Response:
        reason = _reason(request)
        invoice = self.get_object()
        try:
            note, draft = invoice_states.correct_invoice(invoice_id=invoice.pk, reason=reason)
        except (invoice_states.InvoiceStateError, cycle.CloseError) as exc:
            raise Conflict(str(exc)) from exc
        draft = Invoice.objects.prefetch_related("lines").get(pk=draft.pk)
        return Response(CorrectionSerializer({"credit_note": note, "invoice": draft}).data)

    @extend_schema(request=None, responses=InvoiceDetailSerializer, summary="Mark paid")
    @action(detail=True, methods=["post"], url_path="mark-paid")
    def mark_paid(self, request: Request, pk: str | None = None) -> Response:
        return self._act(lambda i: invoice_states.mark_paid(invoice_id=i))

    @extend_schema(request=None, responses=InvoiceDetailSerializer, summary="Regenerate a draft")
    @action(detail=True, methods=["post"])
    def regenerate(self, request: Request, pk: str | None = None) -> Response:
        return self._act(lambda i: invoice_states.regenerate_invoice(invoice_id=i))

    @extend_schema(
        request=None, responses=InvoiceDetailSerializer, summary="E-mail the invoice (again)"
    )
    @action(detail=True, methods=["post"], url_path="resend-email")
    def resend_email(self, request: Request, pk: str | None = None) -> Response:
        def resend(invoice_id: int) -> None:
            if not emails.resend(invoice_ids=[invoice_id]):
                raise invoice_states.InvoiceStateError("only issued or paid invoices are e-mailed")

        return self._act(resend)

    @extend_schema(responses={(200, "application/pdf"): bytes}, summary="The invoice as PDF")
    @action(detail=True, methods=["get"])
    def pdf(self, request: Request, pk: str | None = None) -> HttpResponse:
        invoice = self.get_object()
        response = HttpResponse(documents.invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_filename(invoice)}.pdf"'
        return response

    def _einvoice(self, make: Any, content_type: str, suffix: str) -> HttpResponse:
        invoice = self.get_object()
        return _einvoice(make, invoice, content_type, f"{invoice_filename(invoice)}{suffix}")

    @extend_schema(
        responses={(200, "application/pdf"): bytes},
        summary="The issued invoice as Factur-X (EN 16931): PDF/A-3 with the CII XML inside",
    )
    @action(detail=True, methods=["get"])
    def facturx(self, request: Request, pk: str | None = None) -> HttpResponse:
        return self._einvoice(documents.facturx_document, "application/pdf", "-facturx.pdf")

    @extend_schema(
        responses={(200, "application/xml"): bytes},
        summary="The issued invoice as UBL 2.1 XML (Peppol BIS Billing 3.0)",
    )
    @action(detail=True, methods=["get"])
    def ubl(self, request: Request, pk: str | None = None) -> HttpResponse:
        return self._einvoice(documents.ubl_document, "application/xml", "-ubl.xml")

    @extend_schema(
        filters=True,
        responses={(200, "text/csv"): str},
        summary="The filtered invoices as CSV, one row per line",
    )
    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> HttpResponse:
        rows = self.filter_queryset(self.get_queryset()).prefetch_related("lines")
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
        filters=False,
        responses=UpcomingInvoiceSerializer,
        summary="What the current month costs a customer so far (nothing stored)",
    )
    @action(detail=False, methods=["get"])
    def upcoming(self, request: Request) -> Response:
        query = valid(UpcomingFilter(request.query_params, queryset=Customer.objects.all()))
        customer = query.qs.first()
        if customer is None:
            raise exceptions.NotFound("No such customer.")
        try:
            preview = selectors.preview_invoice(
                customer_id=customer.pk, live=bool(query.form.cleaned_data["live"])
            )
        except SolusIOError as exc:
            raise SolusIOUnavailable() from exc
        data = UpcomingInvoiceSerializer.from_draft(
            customer.pk, preview.period, preview.as_of, preview.draft
        )
        return Response(UpcomingInvoiceSerializer(data).data)


def _einvoice(make: Any, document: Any, content_type: str, filename: str) -> HttpResponse:
    """`make(document)` as a download; a document EN 16931 finds incomplete is a 409 that
    says what to set."""
    try:
        body = make(document)
    except EInvoiceError as exc:
        raise Conflict(str(exc)) from exc
    return documents.attachment(body, content_type, filename)


class CreditNoteViewSet(viewsets.ReadOnlyModelViewSet):
    """Credit notes: issued by voiding or correcting an invoice, never edited."""

    queryset = CreditNote.objects.select_related("invoice", "invoice__customer").order_by("-number")
    permission_classes = [StaffModelPermissions]

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return CreditNoteSerializer if self.action == "list" else CreditNoteDetailSerializer

    @extend_schema(responses={(200, "application/pdf"): bytes}, summary="The credit note as PDF")
    @action(detail=True, methods=["get"])
    def pdf(self, request: Request, pk: str | None = None) -> HttpResponse:
        return credit_note_pdf_response(self.get_object())

    @extend_schema(
        request=None, responses=CreditNoteDetailSerializer, summary="E-mail the credit note (again)"
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="resend-email",
        permission_classes=[CanEmailCreditNotes],
    )
    def resend_email(self, request: Request, pk: str | None = None) -> Response:
        note = self.get_object()
        emails.resend_credit_notes(credit_note_ids=[note.pk])
        fresh = CreditNote.objects.select_related("invoice", "email").get(pk=note.pk)
        return Response(CreditNoteDetailSerializer(fresh).data)

    def _einvoice(self, make: Any, content_type: str, suffix: str) -> HttpResponse:
        note = self.get_object()
        return _einvoice(make, note, content_type, f"{credit_note_filename(note)}{suffix}")

    @extend_schema(
        responses={(200, "application/pdf"): bytes},
        summary="The credit note as Factur-X (EN 16931, type 381): PDF/A-3 with the CII XML",
    )
    @action(detail=True, methods=["get"])
    def facturx(self, request: Request, pk: str | None = None) -> HttpResponse:
        return self._einvoice(
            documents.credit_note_facturx_document, "application/pdf", "-facturx.pdf"
        )

    @extend_schema(
        responses={(200, "application/xml"): bytes},
        summary="The credit note as UBL 2.1 CreditNote XML (Peppol BIS Billing 3.0)",
    )
    @action(detail=True, methods=["get"])
    def ubl(self, request: Request, pk: str | None = None) -> HttpResponse:
        return self._einvoice(documents.credit_note_ubl_document, "application/xml", "-ubl.xml")

    @extend_schema(
        responses={(200, "text/csv"): str}, summary="Credit notes as CSV, one row per line"
    )
    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> HttpResponse:
        response = HttpResponse(credit_notes_csv(self.get_queryset()), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="credit-notes.csv"'
        return response


class UsageRecordViewSet(viewsets.ReadOnlyModelViewSet):
    """Raw usage rows as pulled from SolusIO; `?orphan=true` lists the unclaimed ones."""

    queryset = UsageRecord.objects.order_by("period", "server_id", "item", "started_at")
    serializer_class = UsageRecordSerializer
    filterset_class = UsageRecordFilter


class BillingSettingsView(SingletonView):
    """The cycle settings (auto-issue, dunning days): one object, no id."""

    queryset = BillingSettings.objects.all()
    serializer_class = BillingSettingsSerializer


class DunningEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Dunning's steps: suspensions, reactivations and failed deliveries, newest first."""

    queryset = DunningEvent.objects.all()
    serializer_class = DunningEventSerializer
    filterset_class = DunningEventFilter


class CloseRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Cycle closes, newest first: their stages' progress, each shard's worker and error.
    Read-only: a close is started by beat or `manage.py close_cycle`."""

    def get_queryset(self) -> QuerySet[Any]:
        runs = workflow.runs()
        if self.action == "retrieve":
            return runs.prefetch_related("shards")
        return runs

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return CloseRunSerializer if self.action == "list" else CloseRunDetailSerializer
