"""What the bridge keeps about Stripe (issue 14 §2): the webhook events it received (once
each), the customers whose payment method Stripe saved, and each off-session charge tried.

Imported by payments.models, so these are the payments app's models.
"""

from django.db import models
from django.db.models import Q

from usage.models import Invoice
from users.models import Customer


class StripeEventState(models.TextChoices):
    RECEIVED = "received", "Received"  # verified and stored; the task has not run yet
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"  # a type or an object the bridge does not act on
    FAILED = "failed", "Failed"  # a payment that failed, or one that could not be recorded


class StripeEvent(models.Model):
    """A webhook event, stored once per Stripe event id before it is answered, so a
    redelivery (Stripe retries for days) records nothing twice."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField(help_text="The event as Stripe signed it.")
    state = models.CharField(
        max_length=16, choices=StripeEventState.choices, default=StripeEventState.RECEIVED
    )
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payment = models.ForeignKey(
        "payments.Payment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(
        max_length=500, blank=True, help_text="What processing did, or why not."
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=Q(state="received"),
                name="stripe_event_unprocessed",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class StripeCustomer(models.Model):
    """The customer's Stripe customer and the payment method saved for off-session charges
    (kept here, not on users.Customer: only payments knows about Stripe)."""

    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, primary_key=True, related_name="stripe"
    )
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    payment_method_id = models.CharField(max_length=255, blank=True)
    payment_method_type = models.CharField(max_length=32, blank=True)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.stripe_customer_id} (customer {self.customer_id})"


class CollectionState(models.TextChoices):
    # The call's outcome is unknown (Stripe unreachable): retried with the same key.
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"  # SEPA: accepted, the money follows
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class CollectionAttempt(models.Model):
    """One off-session charge of an invoice's open balance (automatic collection)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="+")
    attempt = models.PositiveSmallIntegerField()
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    currency = models.CharField(max_length=3)
    payment_intent_id = models.CharField(max_length=255, blank=True)
    state = models.CharField(
        max_length=16, choices=CollectionState.choices, default=CollectionState.PENDING
    )
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # When the sweep tries again: the same attempt while pending, the next one once failed.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "attempt"], name="collection_attempt_once")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(next_attempt_at__isnull=False),
                name="collection_retry_due",
            )
        ]

    def __str__(self) -> str:
        return f"collection {self.attempt} of invoice {self.invoice_id}: {self.state}"
