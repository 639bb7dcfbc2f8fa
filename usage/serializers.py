"""Staff API serializers for usage and invoices (read-only: invoices change by action)."""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from bridge.jsonnum import plain_decimal
from payments.serializers import balance_field, paid_field
from usage.models import (
    SELLER_FIELDS,
    BillingSettings,
    CloseRun,
    CloseShard,
    CreditNote,
    CreditNoteEmail,
    DunningEvent,
    Invoice,
    InvoiceEmail,
    InvoiceLine,
    UsageRecord,
)
from usage.rules import InvoiceDraft


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = [
            "position", "server_id", "server_uuid", "server_name", "plan_id", "plan_name",
            "item", "started_at", "ended_at", "hours", "tokens_per_hour", "tokens_per_month",
            "backup_price", "rule", "tokens", "amount", "reported_tokens", "discrepancy",
        ]  # fmt: skip


class InvoiceSerializer(serializers.ModelSerializer):
    display_number = serializers.CharField(read_only=True)
    payment_reference = serializers.CharField(
        read_only=True,
        help_text="ISO 11649 creditor reference (RF…) for bank transfers; empty for a draft.",
    )
    period = serializers.SerializerMethodField()
    paid = paid_field()
    balance = balance_field()

    class Meta:
        model = Invoice
        fields = [
            "id", "display_number", "number", "payment_reference", "customer", "period",
            "period_start", "period_end", "status", "currency", "tokens", "subtotal",
            "tax_total", "total", "paid", "balance", "discrepancies", "hold_reason",
            "generated_at", "issued_at", "paid_at", "voided_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_period(self, obj: Invoice) -> str:
        return f"{obj.period:%Y-%m}"


class InvoiceEmailSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceEmail
        fields = ["state", "attempts", "last_error", "recipient", "sent_at", "next_attempt_at"]
        read_only_fields = fields


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)
    email = InvoiceEmailSerializer(read_only=True, allow_null=True)

    class Meta(InvoiceSerializer.Meta):
        fields = [*InvoiceSerializer.Meta.fields, "taxes", "snapshot", "legal", "lines", "email"]
        read_only_fields = fields


class UsageRecordSerializer(serializers.ModelSerializer):
    orphan = serializers.BooleanField(source="is_orphan", read_only=True)
    unknown_kind = serializers.BooleanField(source="is_unknown_kind", read_only=True)

    class Meta:
        model = UsageRecord
        fields = [
            "id", "period", "customer", "billing_user_id", "orphan", "solusio_user_id",
            "server_id", "server_uuid", "server_name", "item", "plan_id", "plan_name",
            "unknown_kind", "hours", "tokens_per_hour", "tokens_per_month", "backup_price",
            "reported_tokens", "started_at", "ended_at",
        ]  # fmt: skip
        read_only_fields = fields


class UpcomingInvoiceSerializer(serializers.Serializer):
    """The month-to-date preview: an unsaved invoice."""

    customer = serializers.IntegerField()
    period = serializers.CharField()
    period_start = serializers.DateTimeField()
    upto = serializers.DateTimeField()
    currency = serializers.CharField(allow_null=True)
    tokens = serializers.IntegerField()
    subtotal = serializers.DecimalField(max_digits=20, decimal_places=4)
    tax_total = serializers.DecimalField(max_digits=20, decimal_places=4)
    total = serializers.DecimalField(max_digits=20, decimal_places=4)
    lines = serializers.ListField(child=serializers.DictField())

    @staticmethod
    def from_draft(
        customer_id: int, period: Any, upto: Any, draft: InvoiceDraft | None
    ) -> dict[str, Any]:
        zero = Decimal(0)
        if draft is None:
            return {
                "customer": customer_id, "period": period.label, "period_start": period.start,
                "upto": upto, "currency": None, "tokens": 0, "subtotal": zero,
                "tax_total": zero, "total": zero, "lines": [],
            }  # fmt: skip
        totals = draft.totals
        return {
            "customer": customer_id,
            "period": period.label,
            "period_start": period.start,
            "upto": upto,
            "currency": draft.pricing.currency,
            "tokens": draft.tokens,
            "subtotal": totals.subtotal,
            "tax_total": totals.total - totals.subtotal,
            "total": totals.total,
            "lines": [
                {
                    "server_id": line.usage.server_id,
                    "server_name": line.usage.server_name,
                    "item": line.usage.item,
                    "plan_name": line.usage.plan_name,
                    "hours": line.charge.hours,
                    "tokens_per_hour": line.charge.tokens_per_hour,
                    "tokens_per_month": line.charge.tokens_per_month,
                    "backup_price": plain_decimal(line.usage.backup_price)
                    if line.usage.backup_price is not None
                    else None,
                    "rule": str(line.charge.rule),
                    "tokens": line.charge.tokens,
                    "amount": str(line.amount),
                }
                for line in draft.lines
            ],
        }


class BillingSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = BillingSettings
        fields = [
            "auto_issue", "dunning_days", "reminder_days", "email_invoices", "einvoice_pdf",
            "auto_collect",
            *SELLER_FIELDS,
        ]  # fmt: skip


class SellerSerializer(serializers.ModelSerializer):
    """The seller's invoice details alone (the importer's `seller` section)."""

    class Meta:
        model = BillingSettings
        fields = list(SELLER_FIELDS)


class DunningEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = DunningEvent
        fields = ["id", "customer", "invoice", "action", "reason", "at"]
        read_only_fields = fields


class CreditReasonSerializer(serializers.Serializer):
    """The body of a void or correction: why, printed on the credit note."""

    reason = serializers.CharField(max_length=500, trim_whitespace=True)


class CreditNoteSerializer(serializers.ModelSerializer):
    display_number = serializers.CharField(read_only=True)
    invoice_number = serializers.CharField(source="invoice.display_number", read_only=True)
    customer = serializers.IntegerField(source="invoice.customer_id", read_only=True)

    class Meta:
        model = CreditNote
        fields = [
            "id", "display_number", "number", "invoice", "invoice_number", "customer", "kind",
            "reason", "issued_at", "currency", "tokens", "subtotal", "tax_total", "total",
        ]  # fmt: skip
        read_only_fields = fields


class CreditNoteEmailSerializer(serializers.ModelSerializer):
    class Meta:
        model = CreditNoteEmail
        fields = InvoiceEmailSerializer.Meta.fields
        read_only_fields = fields


class CreditNoteDetailSerializer(CreditNoteSerializer):
    email = CreditNoteEmailSerializer(read_only=True, allow_null=True)

    class Meta(CreditNoteSerializer.Meta):
        fields = [*CreditNoteSerializer.Meta.fields, "taxes", "lines", "legal", "email"]
        read_only_fields = fields


class CorrectionSerializer(serializers.Serializer):
    """A correction's outcome: the credit note and the new draft to review and issue."""

    credit_note = CreditNoteDetailSerializer()
    invoice = InvoiceDetailSerializer()


class CloseShardSerializer(serializers.ModelSerializer):
    part = serializers.CharField(
        read_only=True, help_text='What the shard covers, e.g. "pages 101–200", "customers 1–2000".'
    )

    class Meta:
        model = CloseShard
        fields = [
            "stage", "index", "part", "first_customer", "last_customer", "customers",
            "first_part", "last_part", "state", "attempts", "worker", "started_at",
            "finished_at", "rows", "orphans", "built", "created", "updated", "unchanged",
            "frozen", "error",
        ]  # fmt: skip
        read_only_fields = fields


class CloseRunSerializer(serializers.ModelSerializer):
    """A cycle close and how far it got (`usage.workflow.runs`: the counts come annotated)."""

    period = serializers.DateField(format="%Y-%m", help_text="The billing month.")
    shards_done = serializers.IntegerField(help_text="Build shards whose drafts are all built.")
    pull_shards = serializers.IntegerField(help_text="Parts the pull is cut into.")
    pull_shards_done = serializers.IntegerField(help_text="Parts of the pull stored.")
    built = serializers.IntegerField(help_text="Customers whose drafts are built so far.")
    progress = serializers.SerializerMethodField(
        help_text="How far the close got, 0 to 100 (the build is most of it)."
    )

    class Meta:
        model = CloseRun
        fields = [
            "id", "period", "customer", "pull", "auto_issue", "inline", "state", "source",
            "fallback_reason", "started_at", "finished_at", "progress", "rows", "orphans",
            "customers", "built", "pull_shards", "pull_shards_done", "shards_total",
            "shards_done", "created", "updated",
            "unchanged", "frozen", "removed", "issued", "held", "error", "seconds",
        ]  # fmt: skip
        read_only_fields = fields

    def get_progress(self, run: CloseRun) -> int:
        from usage.workflow import percent_done

        return percent_done(run)


class CloseRunDetailSerializer(CloseRunSerializer):
    shards = CloseShardSerializer(many=True, read_only=True)

    class Meta(CloseRunSerializer.Meta):
        fields = [*CloseRunSerializer.Meta.fields, "shards"]
        read_only_fields = fields
