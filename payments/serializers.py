"""Staff API serializers for payments: read shapes with their allocations, and the bodies of
recording a payment and a refund (validated here, recorded by payments.services)."""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from payments import selectors
from payments.models import Allocation, Payment, PaymentMethod, Reminder
from usage.models import Invoice


class AllocationSerializer(serializers.ModelSerializer):
    invoice_number = serializers.CharField(source="invoice.display_number", read_only=True)

    class Meta:
        model = Allocation
        fields = ["invoice", "invoice_number", "amount", "allocated_at"]
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    allocations = AllocationSerializer(many=True, read_only=True)
    unallocated = serializers.SerializerMethodField(
        help_text="What this payment has not put on any invoice (customer credit)."
    )

    class Meta:
        model = Payment
        fields = [
            "id", "customer", "amount", "currency", "method", "reference", "received_at",
            "credit_note", "note", "created_at", "allocations", "unallocated",
        ]  # fmt: skip
        read_only_fields = fields

    def get_unallocated(self, obj: Payment) -> str:
        # A string with the amounts' four places, as every amount; exact (no rounding).
        if obj.amount < 0:
            return "0.0000"
        used = sum((a.amount for a in obj.allocations.all()), Decimal(0))
        return f"{(obj.amount - used).quantize(Decimal('0.0001')):f}"


class ReminderSerializer(serializers.ModelSerializer):
    invoice_number = serializers.CharField(source="invoice.display_number", read_only=True)

    class Meta:
        model = Reminder
        fields = [
            "id", "customer", "invoice", "invoice_number", "number", "days", "due_date",
            "state", "attempts", "last_error", "recipient", "created_at", "next_attempt_at",
            "sent_at",
        ]  # fmt: skip
        read_only_fields = fields


class RecordPaymentSerializer(serializers.Serializer):
    """Money received. Settles `invoice` first when given, then the oldest open invoices;
    the rest is credit. Recorded once per (method, reference)."""

    customer = serializers.IntegerField(min_value=1)
    amount = serializers.DecimalField(20, 4, min_value=Decimal("0.0001"))
    currency = serializers.CharField(min_length=3, max_length=3)
    method = serializers.ChoiceField(choices=PaymentMethod.choices)
    reference = serializers.CharField(max_length=255, required=False, allow_blank=True)
    received_at = serializers.DateTimeField()
    invoice = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True)


class RefundSerializer(serializers.Serializer):
    """Money paid back against a credit note: at most the customer's credit and what the
    credit note has left to refund."""

    credit_note = serializers.IntegerField(min_value=1)
    amount = serializers.DecimalField(20, 4, min_value=Decimal("0.0001"))
    method = serializers.ChoiceField(choices=PaymentMethod.choices)
    reference = serializers.CharField(max_length=255, required=False, allow_blank=True)
    received_at = serializers.DateTimeField(
        required=False, help_text="When the money left; now when not given."
    )
    note = serializers.CharField(max_length=500, required=False, allow_blank=True)


class InvoiceMoneyField(serializers.DecimalField):
    """An invoice's paid or open amount (payments.selectors), a decimal string like the
    other amounts; read from `with_paid`'s annotation when the list has it."""

    def __init__(self, read: Any, **kwargs: Any) -> None:
        self.read = read
        super().__init__(20, 4, read_only=True, **kwargs)

    def get_attribute(self, instance: Invoice) -> Decimal:
        return Decimal(self.read(instance))


def paid_field() -> InvoiceMoneyField:
    return InvoiceMoneyField(selectors.paid_of, help_text="What payments put on the invoice.")


def balance_field() -> InvoiceMoneyField:
    return InvoiceMoneyField(selectors.balance_of, help_text="What is still owed: 0 unless issued.")
