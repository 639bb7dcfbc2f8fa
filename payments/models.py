"""Money received from customers and how it settles their invoices.

A payment is money in (or, negative, a refund out), unique on its external reference so a
webhook or a bank statement seen twice records nothing twice. An allocation puts part of a
payment on one invoice; an invoice's balance is its total less its allocations, and what a
payment has not allocated is the customer's credit, which the next invoice uses (as an
allocation shown on that invoice, never as a change to it).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext, gettext_lazy, ngettext

from bridge.models import Delivery, DeliveryState
from usage.models import CreditNote, Invoice
from users.models import Customer


class PaymentMethod(models.TextChoices):
    # Lazy: the customer's Payments page shows them in the customer's language.
    CARD = "card", gettext_lazy("Card")
    SEPA_DEBIT = "sepa_debit", gettext_lazy("SEPA Direct Debit")
    BANK_TRANSFER = "bank_transfer", gettext_lazy("Bank transfer")
    MANUAL = "manual", gettext_lazy("Manual")


class Payment(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    # Exact money; negative for a refund (which names the credit note it pays out).
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    currency = models.CharField(max_length=3)
    method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    reference = models.CharField(
        max_length=255,
        blank=True,
        help_text="The payment provider's or bank's reference: a payment is recorded once "
        "per method and reference.",
    )
    received_at = models.DateTimeField()
    credit_note = models.ForeignKey(
        CreditNote,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refunds",
        help_text="The credit note a refund pays out.",
    )
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["method", "reference"],
                condition=~Q(reference=""),
                name="payment_once_per_reference",
            ),
            models.CheckConstraint(condition=~Q(amount=0), name="payment_not_zero"),
            # A refund is money out against a credit note; money in never names one.
            models.CheckConstraint(
                condition=Q(amount__gt=0, credit_note__isnull=True)
                | Q(amount__lt=0, credit_note__isnull=False),
                name="payment_refund_has_credit_note",
            ),
            models.CheckConstraint(
                condition=Q(method__in=PaymentMethod.values), name="payment_method_valid"
            ),
        ]
        indexes = [models.Index(fields=["customer", "currency"], name="payment_customer")]
        # Paying money back is its own grant: recording money in is routine clerk work.
        permissions = [("refund_payment", "Can refund money to a customer")]

    def __str__(self) -> str:
        when = f"{self.received_at:%Y-%m-%d}"
        return f"{self.amount} {self.currency} {self.get_method_display()} ({when})"


class Allocation(models.Model):
    """Part of a payment put on an invoice; positive, at most the payment's amount in all
    (services.allocate keeps that under the customer's row lock)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations")
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    allocated_at = models.DateTimeField()

    class Meta:
        ordering = ["allocated_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["payment", "invoice"], name="allocation_once"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of payment {self.payment_id} on invoice {self.invoice_id}"


class Reminder(Delivery):
    """A payment reminder e-mail about one open invoice, at one step of the dunning schedule
    (BillingSettings.reminder_days): written by the dunning sweep (one per invoice and step,
    a constraint, so two sweeps never remind twice), sent by a task after commit with
    retries, and kept as the record staff and the customer see."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="reminders")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="reminders")
    days = models.IntegerField(help_text="The step: days after the due date (negative: before it).")
    number = models.PositiveSmallIntegerField(help_text="1 for the first step, and so on.")
    due_date = models.DateField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "days"], name="reminder_once_per_step"),
            models.CheckConstraint(
                condition=Q(state__in=DeliveryState.values), name="reminder_state_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at", "created_at"],
                condition=Q(state="pending"),
                name="reminder_pending",
            ),
            models.Index(fields=["customer", "-created_at"], name="reminder_customer"),
        ]

    def __str__(self) -> str:
        return f"Reminder {self.number} about invoice {self.invoice_id} ({self.state})"

    @property
    def step_label(self) -> str:
        if self.days < 0:
            return ngettext(
                "%(days)d day before the due date", "%(days)d days before the due date", -self.days
            ) % {"days": -self.days}
        if self.days == 0:
            return gettext("on the due date")
        return ngettext(
            "%(days)d day after the due date", "%(days)d days after the due date", self.days
        ) % {"days": self.days}


class StatementFormat(models.TextChoices):
    CAMT053 = "camt053", "ISO 20022 camt.053"
    CSV = "csv", "CSV"


class BankStatement(models.Model):
    """One imported bank statement file; the same file (by content) is imported once."""

    file_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the file.")
    filename = models.CharField(max_length=255, blank=True)
    format = models.CharField(max_length=8, choices=StatementFormat.choices)
    account = models.CharField(
        max_length=64, blank=True, help_text="The statement's account (IBAN), when it names one."
    )
    imported_at = models.DateTimeField()
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # What the import found: credit entries new to us, those already known from an
    # earlier (overlapping) statement, and debits or unbooked entries it skipped.
    entries = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    matched = models.PositiveIntegerField(default=0)
    unmatched = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-imported_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(format__in=StatementFormat.values), name="bankstatement_format_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.filename or self.get_format_display()} ({self.imported_at:%Y-%m-%d %H:%M})"


class EntryState(models.TextChoices):
    UNMATCHED = "unmatched", "Unmatched"
    MATCHED = "matched", "Matched"
    IGNORED = "ignored", "Ignored"


class BankEntry(models.Model):
    """Money in on the bank account: a credit entry of a statement, recorded once per
    account however many statements list it."""

    statement = models.ForeignKey(
        BankStatement,
        on_delete=models.PROTECT,
        related_name="bank_entries",
        help_text="The first statement that listed it.",
    )
    account = models.CharField(max_length=64, blank=True)
    external_id = models.CharField(
        max_length=128,
        help_text="The bank's reference (AcctSvcrRef), or a hash of date, amount, text and "
        "occurrence when the bank gives none.",
    )
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    currency = models.CharField(max_length=3)
    booked_on = models.DateField()
    text = models.CharField(max_length=1000, blank=True, help_text="Remittance information.")
    structured_reference = models.CharField(max_length=64, blank=True)
    counterparty = models.CharField(max_length=255, blank=True)
    state = models.CharField(
        max_length=10, choices=EntryState.choices, default=EntryState.UNMATCHED
    )
    reason = models.CharField(
        max_length=500, blank=True, help_text="Why it was not matched automatically."
    )
    payment = models.OneToOneField(
        Payment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bank_entry",
    )
    # Invoice ids staff are most likely to want, best first (same amount, name, number).
    suggestions = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-booked_on", "-id"]
        verbose_name_plural = "bank entries"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "external_id"], name="bankentry_once_per_account"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="bankentry_credit"),
            models.CheckConstraint(
                condition=Q(state__in=EntryState.values), name="bankentry_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(state=EntryState.MATCHED, payment__isnull=False)
                | (~Q(state=EntryState.MATCHED) & Q(payment__isnull=True)),
                name="bankentry_matched_iff_payment",
            ),
        ]
        indexes = [models.Index(fields=["state", "booked_on"], name="bankentry_state")]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} on {self.booked_on} ({self.counterparty or '?'})"


# Stripe's models live in their own module (issue 14 §2); imported here so Django finds them.
from payments.stripe_models import (  # noqa: E402
    CollectionAttempt,
    CollectionState,
    StripeCustomer,
    StripeEvent,
    StripeEventState,
)

__all__ = [
    "Allocation",
    "BankEntry",
    "BankStatement",
    "CollectionAttempt",
    "CollectionState",
    "EntryState",
    "Payment",
    "PaymentMethod",
    "Reminder",
    "StatementFormat",
    "StripeCustomer",
    "StripeEvent",
    "StripeEventState",
]
