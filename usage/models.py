"""Usage pulled from SolusIO, invoices built from it, and the staff settings of the cycle.

Invariants the database can hold are constraints: one stored row per usage item and period,
one invoice per (customer, period), unique invoice numbers, one settings row.
"""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from bridge.models import SingletonModel
from users.models import Customer

PAYMENT_LINK_FIELDS = ("number", "total", "currency", "customer")
LOGO_SUFFIXES = (".png", ".jpg", ".jpeg")
# The seller as every invoice names it (DESIGN §6).
SELLER_FIELDS = (
    "seller_name",
    "seller_address",
    "seller_vat_id",
    "seller_registration",
    "support_email",
    "payment_instructions",
    "payment_link_template",
    "payment_terms_days",
    "logo_path",
    "invoice_footer",
)


def logo_file(path: str) -> Path | None:
    """The logo's file: `path` as given if absolute, else under the project's directory."""
    if not path:
        return None
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = Path(settings.BASE_DIR) / candidate
    return candidate if candidate.is_file() else None


def validate_logo_path(value: str) -> None:
    if not value.lower().endswith(LOGO_SUFFIXES):
        raise ValidationError("The logo must be a PNG or JPEG file (.png, .jpg, .jpeg).")
    if logo_file(value) is None:
        raise ValidationError("No file at %(path)s on this server.", params={"path": value})


def validate_payment_link_template(value: str) -> None:
    try:
        value.format(**dict.fromkeys(PAYMENT_LINK_FIELDS, "x"))
    except (KeyError, IndexError, ValueError) as exc:
        raise ValidationError(
            "Use only {number}, {total}, {currency} and {customer} in braces (%(error)s).",
            params={"error": exc},
        ) from exc


class BillingSettings(SingletonModel):
    """The one row of staff-editable cycle settings."""

    auto_issue = models.BooleanField(
        default=False,
        help_text="Issue invoices as soon as the cycle close builds them; otherwise they "
        "wait as drafts for review. Invoices with SolusIO discrepancies always wait.",
    )
    dunning_days = models.PositiveIntegerField(
        default=14,
        help_text="Suspend a customer whose issued invoice is still unpaid this many days "
        "after issue. 0 turns dunning off.",
    )
    email_invoices = models.BooleanField(
        default=True,
        help_text="E-mail each invoice (PDF attached) to the customer when it is issued. "
        "Staff can still re-send one by hand when this is off.",
    )
    # SELLER_FIELDS: copied onto an invoice when it is issued (Invoice.legal), so editing
    # them never changes an issued invoice.
    seller_name = models.CharField("seller legal name", max_length=255, blank=True)
    seller_address = models.TextField(blank=True, help_text="Postal address, one line per row.")
    seller_vat_id = models.CharField("seller VAT / tax id", max_length=64, blank=True)
    seller_registration = models.CharField(
        "company registration",
        max_length=255,
        blank=True,
        help_text="e.g. 'Registered in England and Wales, no. 01234567'.",
    )
    support_email = models.EmailField(blank=True)
    payment_instructions = models.TextField(
        blank=True,
        help_text="How to pay: bank account, IBAN and BIC. Shown on every invoice.",
    )
    payment_link_template = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_payment_link_template],
        help_text="A link to pay online, with {number}, {total}, {currency} and {customer} "
        "filled in, e.g. https://pay.example.com/?invoice={number}&amount={total}",
    )
    payment_terms_days = models.PositiveIntegerField(
        default=14, help_text="The due date is the issue date plus this many days."
    )
    logo_path = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_logo_path],
        help_text="A PNG or JPEG on this server drawn on the invoice: an absolute path, or "
        "one relative to the project's directory.",
    )
    invoice_footer = models.TextField(blank=True, help_text="Printed at the foot of each page.")

    class Meta(SingletonModel.Meta):
        verbose_name = "billing settings"
        verbose_name_plural = "billing settings"


class UsagePull(models.Model):
    """One complete or attempted pull of a period's usage. Invoices are built only from a
    period whose latest pull completed: a pull cut short by SolusIO builds nothing."""

    period = models.DateField(unique=True, help_text="First day of the billing month.")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    generation = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    # Where the pulled range ends: the period's end, or the moment a month-to-date pull
    # ran (the customer preview reads those). Invoices need a pull up to the period's end.
    upto = models.DateTimeField(null=True, blank=True)
    # Set when a whole close (pull, build, issue) of the period finished; the hourly beat
    # task skips closed periods.
    closed_at = models.DateTimeField(null=True, blank=True)
    rows = models.PositiveIntegerField(default=0)
    pages = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-period"]

    def __str__(self) -> str:
        state = "complete" if self.completed_at else "incomplete"
        return f"{self.period:%Y-%m} ({state})"


class UsageItemKind(models.TextChoices):
    SERVER = "server", "Server"
    ADDITIONAL_IP = "additional_ip", "Additional IP"


class UsageRecord(models.Model):
    """A raw usage row of a period, as SolusIO reported it (prices included).

    Keyed by (period, server, item, start of the segment): the same row pulled twice is one
    row. `customer` is null for an orphan — a billing_user_id we do not know (or none) —
    kept and shown to staff, never dropped.
    """

    period = models.DateField()
    server_id = models.BigIntegerField()
    item = models.CharField(max_length=16, choices=UsageItemKind.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    billing_user_id = models.BigIntegerField(null=True, blank=True)
    solusio_user_id = models.BigIntegerField()
    server_uuid = models.CharField(max_length=64)
    server_name = models.CharField(max_length=255)
    plan_id = models.BigIntegerField()
    plan_name = models.CharField(max_length=255)
    hours = models.PositiveIntegerField()
    tokens_per_hour = models.PositiveIntegerField()
    tokens_per_month = models.PositiveIntegerField()
    reported_tokens = models.BigIntegerField(null=True, blank=True)
    # The pull that last saw this row: rows an earlier pull saw and the latest did not are
    # removed when the latest completes, so the table is exactly the latest complete pull.
    generation = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["period", "customer_id", "server_id", "item", "started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "server_id", "item", "started_at"], name="usage_row_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["period", "customer"], name="usage_period_customer"),
            models.Index(
                fields=["period"], condition=Q(customer__isnull=True), name="usage_orphans"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.period:%Y-%m} {self.item} {self.server_name} ({self.hours} h)"

    @property
    def is_orphan(self) -> bool:
        return self.customer_id is None


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ISSUED = "issued", "Issued"
    PAID = "paid", "Paid"
    VOID = "void", "Void"


class InvoiceCounter(models.Model):
    """The gap-free invoice number sequence: one row, locked while a number is taken, so
    numbers are handed out in commit order and a rolled-back issue gives its number back."""

    name = models.CharField(primary_key=True, max_length=32)
    last = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.last}"


class Invoice(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    period = models.DateField(help_text="First day of the billing month.")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(
        max_length=8, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    number = models.PositiveBigIntegerField(null=True, blank=True, unique=True)
    currency = models.CharField(max_length=3)
    tokens = models.BigIntegerField(default=0)
    subtotal = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    tax_total = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    total = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    # Prices, discounts and taxes used (rules.PricingSnapshot.as_json) and the tax lines
    # computed, so the invoice can be re-rendered and audited exactly later.
    snapshot = models.JSONField(default=dict)
    taxes = models.JSONField(default=list)
    # Seller, customer, issue and due date as they were when the invoice was issued
    # (usage.legal); empty on a draft, which shows the current ones.
    legal = models.JSONField(default=dict, db_default={}, blank=True)
    discrepancies = models.PositiveIntegerField(
        default=0, help_text="Lines where SolusIO reported a different charge."
    )
    fingerprint = models.CharField(max_length=64, blank=True)
    generated_at = models.DateTimeField()
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period", "customer_id"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "period"], name="invoice_once_per_period"),
            models.CheckConstraint(
                condition=Q(status=InvoiceStatus.DRAFT, number__isnull=True)
                | (~Q(status=InvoiceStatus.DRAFT) & Q(number__isnull=False)),
                name="invoice_number_iff_issued",
            ),
            models.CheckConstraint(
                condition=Q(status__in=InvoiceStatus.values), name="invoice_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "issued_at"], name="invoice_status_issued")]

    def __str__(self) -> str:
        return f"{self.display_number} {self.customer_id} {self.period:%Y-%m}"

    @property
    def display_number(self) -> str:
        return f"INV-{self.number:06d}" if self.number else f"draft #{self.pk}"

    @property
    def is_frozen(self) -> bool:
        return self.status != InvoiceStatus.DRAFT


class InvoiceLine(models.Model):
    """A usage item's charge: copied from the usage row so the invoice stands on its own."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    server_id = models.BigIntegerField()
    server_uuid = models.CharField(max_length=64)
    server_name = models.CharField(max_length=255)
    plan_id = models.BigIntegerField()
    plan_name = models.CharField(max_length=255)
    item = models.CharField(max_length=16, choices=UsageItemKind.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    hours = models.PositiveIntegerField()
    tokens_per_hour = models.PositiveIntegerField()
    tokens_per_month = models.PositiveIntegerField()
    rule = models.CharField(max_length=16)
    tokens = models.BigIntegerField()
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    reported_tokens = models.BigIntegerField(null=True, blank=True)
    discrepancy = models.BooleanField(default=False)

    class Meta:
        ordering = ["invoice_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoiceline_position"),
        ]

    def __str__(self) -> str:
        return f"{self.server_name} {self.item} {self.hours} h → {self.tokens}"


class InvoiceEmailState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # gave up after INVOICE_EMAIL_MAX_ATTEMPTS; staff may re-send
    SKIPPED = "skipped", "Skipped"  # the invoice was voided before it went out


class InvoiceEmail(models.Model):
    """The delivery of an issued invoice to its customer: written in the transaction that
    issues the invoice (one per invoice, a constraint), sent by a Celery task after commit,
    retried with backoff, and re-sent by the sweep when the broker lost the message."""

    invoice = models.OneToOneField(Invoice, on_delete=models.CASCADE, related_name="email")
    state = models.CharField(
        max_length=8, choices=InvoiceEmailState.choices, default=InvoiceEmailState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    recipient = models.CharField(max_length=254, blank=True, help_text="Where it was sent.")
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "invoice e-mail"
        indexes = [
            models.Index(
                fields=["next_attempt_at", "created_at"],
                condition=Q(state="pending"),
                name="invoice_email_pending",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=InvoiceEmailState.values), name="invoice_email_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id} {self.state}"


class DunningAction(models.TextChoices):
    SUSPENDED = "suspended", "Suspended"
    REACTIVATED = "reactivated", "Reactivated"
    FAILED = "failed", "Failed"  # the step above could not reach SolusIO (sync parked)


class DunningEvent(models.Model):
    """Every step dunning takes, for staff to see on the customer."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="dunning")
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.SET_NULL, related_name="dunning"
    )
    action = models.CharField(max_length=16, choices=DunningAction.choices)
    reason = models.CharField(max_length=255)
    at = models.DateTimeField()
    # The status change's outbox record: a `failed` step names the record that is stuck.
    sync_record = models.ForeignKey(
        "users.SyncRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d} {self.customer_id} {self.action}"
