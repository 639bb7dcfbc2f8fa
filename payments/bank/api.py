"""Staff API for bank statements (/api/v1/bank-statements/, /api/v1/bank-entries/). Thin:
the work is payments.bank.services; errors and permissions are bridge.api's."""

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from bridge.api import StaffModelPermissions, model_permission
from bridge.api_examples import _examples
from bridge.filters import IdFilter
from payments.bank import services
from payments.models import BankEntry, BankStatement, EntryState, StatementFormat


class BankStatementSerializer(serializers.ModelSerializer):
    class Meta:
        model = BankStatement
        fields = [
            "id", "filename", "format", "account", "imported_at", "imported_by", "entries",
            "duplicates", "skipped", "matched", "unmatched",
        ]  # fmt: skip
        read_only_fields = fields


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=StatementFormat.choices, required=False)
    account = serializers.CharField(
        required=False, default="", max_length=64, help_text="The IBAN of a CSV statement."
    )


class ImportSummarySerializer(serializers.Serializer):
    statement = serializers.IntegerField()
    format = serializers.CharField()
    account = serializers.CharField()
    already_imported = serializers.BooleanField()
    entries = serializers.IntegerField()
    new = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    skipped = serializers.IntegerField()
    matched = serializers.IntegerField()
    unmatched = serializers.IntegerField()
    invoices_paid = serializers.IntegerField()


class BankEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = BankEntry
        fields = [
            "id", "statement", "account", "external_id", "amount", "currency", "booked_on",
            "text", "structured_reference", "counterparty", "state", "reason", "payment",
            "suggestions",
        ]  # fmt: skip
        read_only_fields = fields


class AssignSerializer(serializers.Serializer):
    invoice = serializers.IntegerField(min_value=1)


class BankEntryFilter(filters.FilterSet):
    statement = IdFilter(field_name="statement_id")
    state = filters.ChoiceFilter(choices=EntryState.choices)

    class Meta:
        model = BankEntry
        fields: list[str] = []


class BankStatementViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Upload needs payments.add_bankstatement; reading, view_bankstatement."""

    queryset = BankStatement.objects.all()
    serializer_class = BankStatementSerializer
    permission_classes = [StaffModelPermissions]
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={201: ImportSummarySerializer, 200: ImportSummarySerializer},
        summary="Import a statement (camt.053 or CSV)",
        description="Stores its new credit entries and matches them; the same file again "
        "answers 200 with already_imported and changes nothing.",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        upload = UploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        try:
            summary = services.import_statement(
                data["file"].read(),
                filename=data["file"].name or "",
                format=data.get("format"),
                account=data["account"],
                user=request.user,
            )
        except services.StatementError as exc:
            raise exceptions.ValidationError({"file": [str(exc)]}) from exc
        code = status.HTTP_200_OK if summary.already_imported else status.HTTP_201_CREATED
        return Response(ImportSummarySerializer(summary.as_dict()).data, status=code)


class BankEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """Reading needs payments.view_bankentry; assigning and ignoring, change_bankentry."""

    queryset = BankEntry.objects.all()
    serializer_class = BankEntrySerializer
    permission_classes = [StaffModelPermissions]
    filterset_class = BankEntryFilter

    def get_queryset(self) -> QuerySet[BankEntry]:
        return BankEntry.objects.order_by("-booked_on", "-id")

    @extend_schema(
        request=AssignSerializer, responses=BankEntrySerializer, summary="Assign to an invoice"
    )
    @action(detail=True, methods=["post"], permission_classes=[model_permission("change")])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        body = AssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        entry = self.get_object()
        try:
            services.assign(
                entry_id=entry.pk, invoice_id=body.validated_data["invoice"], user=request.user
            )
        except services.services.PaymentError as exc:
            raise exceptions.ValidationError({"invoice": [str(exc)]}) from exc
        entry.refresh_from_db()
        return Response(BankEntrySerializer(entry).data)

    @extend_schema(
        request=None, responses=BankEntrySerializer, summary="Ignore (not a customer's payment)"
    )
    @action(detail=True, methods=["post"], permission_classes=[model_permission("change")])
    def ignore(self, request: Request, pk: str | None = None) -> Response:
        entry = self.get_object()
        if not services.ignore(entry_ids=[entry.pk]):
            raise exceptions.ValidationError(
                {"state": [f"the entry is {entry.get_state_display().lower()}, not unmatched"]}
            )
        entry.refresh_from_db()
        return Response(BankEntrySerializer(entry).data)


# The schema's examples (bridge/api_examples.py has the others).
SUMMARY = {
    "statement": 12,
    "format": "camt053",
    "account": "DE89370400440532013000",
    "already_imported": False,
    "entries": 148,
    "new": 140,
    "duplicates": 8,
    "skipped": 31,
    "matched": 133,
    "unmatched": 7,
    "invoices_paid": 131,
}
_examples(ImportSummarySerializer, "An imported statement", SUMMARY, summary="camt.053")
_examples(
    BankStatementSerializer,
    "A camt.053 statement",
    {
        "id": 12,
        "filename": "camt053-2026-11-30.xml",
        "format": "camt053",
        "account": "DE89370400440532013000",
        "imported_at": "2026-11-30T18:05:00Z",
        "imported_by": 3,
        **{k: SUMMARY[k] for k in ("entries", "duplicates", "skipped", "matched", "unmatched")},
    },
)
_examples(
    BankEntrySerializer,
    "A transfer waiting for staff",
    {
        "id": 1401,
        "statement": 12,
        "account": "DE89370400440532013000",
        "external_id": "2026113000004",
        "amount": "30.0000",
        "currency": "USD",
        "booked_on": "2026-11-30",
        "text": "hosting fee",
        "structured_reference": "",
        "counterparty": "Carol Jones",
        "state": "unmatched",
        "reason": "2 open invoices have this amount: no reference to tell them apart",
        "payment": None,
        "suggestions": [5, 4],
    },
)
_examples(AssignSerializer, "Pays invoice 5", {"invoice": 5}, {"invoice": 5})
