"""Usage pulled from SolusIO, invoices built from it, and the staff settings of the cycle.

Invariants the database can hold are constraints: one stored row per usage item and period,
one invoice per (customer, period), unique invoice numbers, one settings row.
"""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from bridge.models import Delivery, DeliveryState, SingletonModel
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


def parse_reminder_days(value: str) -> list[int]:
    """ "-3, 1, 7" -> [-3, 1, 7]: days from the due date (negative before it), distinct and
    sorted. Empty: no reminders. ValueError with a message for staff on anything else."""
    days: set[int] = set()
    for part in value.replace(";", ",").split(","):
        text = part.strip()
        if not text:
            continue
        try:
            day = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number of days") from None
        if not -365 <= day <= 365:
            raise ValueError(f"{day} is more than a year from the due date")
        days.add(day)
    return sorted(days)


def validate_reminder_days(value: str) -> None:
    try:
        parse_reminder_days(value)
    except ValueError as exc:
        raise ValidationError(
            "Whole days from the due date separated by commas, e.g. -3, 1, 7 (%(error)s).",
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
    reminder_days = models.CharField(
        max_length=200,
        blank=True,
        default="-3, 1, 7",
        validators=[validate_reminder_days],
        help_text="E-mail a payment reminder about each open invoice this many days from its "
        "due date, comma-separated; negative is before it (e.g. -3, 1, 7). Empty: none. "
        "Suspension still follows the dunning days.",
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
    auto_collect = models.BooleanField(
        "collect automatically",
        default=False,
        help_text="When Stripe is configured: charge the payment method a customer saved at "
        "checkout when their invoice is issued; a declined charge is tried again "
        "(STRIPE_COLLECT_RETRY_DAYS) and recorded for staff.",
    )
    einvoice_pdf = models.BooleanField(
        "Factur-X PDF",
        default=False,
        help_text="Make every issued invoice's PDF a Factur-X e-invoice (EN 16931): a "
        "PDF/A-3 with the invoice's XML inside, which accounting software reads.",
    )

    def reminder_offsets(self) -> list[int]:
        return parse_reminder_days(self.reminder_days)

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
    # Where the stored rows came from: SolusIO's `/usage`, or our observations of
    # `/servers` (USAGE_SOURCE=observed, or the fallback when `/usage` is unusable).
    source = models.CharField(max_length=16, default="usage_api")
    # Why the close fell back to observed usage (empty when it did not): every invoice
    # built from this pull waits as a draft with this reason.
    fallback_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-period"]

    def __str__(self) -> str:
        state = "complete" if self.completed_at else "incomplete"
        return f"{self.period:%Y-%m} ({state})"


class UsageItemKind(models.TextChoices):
    SERVER = "server", "Server"
    ADDITIONAL_IP = "additional_ip", "Additional IP"
    BACKUP = "backup", "Backups"


class UsageRecord(models.Model):
    """A raw usage row of a period, as SolusIO reported it (prices included).

    Keyed by (period, server, item, start of the segment): the same row pulled twice is one
    row. `customer` is null for an orphan — a billing_user_id we do not know (or none) —
    kept and shown to staff, never dropped. `item` may be a kind the bridge does not price
    (kept as SolusIO wrote it): stored, shown to staff, and its customer's invoice is held.
    """

    period = models.DateField()
    server_id = models.BigIntegerField()
    item = models.CharField(max_length=64, choices=UsageItemKind.choices)
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
    backup_price = models.DecimalField(
        max_digits=9, decimal_places=4, null=True, blank=True, help_text="Percent (rule R7)."
    )
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

    @property
    def is_unknown_kind(self) -> bool:
        return self.item not in UsageItemKind.values


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
        default=0,
        help_text="Lines where SolusIO reported a different charge, or whose hours differ "
        "from the observed ones by more than one polling interval.",
    )
    # A database default: bulk writes (COPY) name only their columns.
    hold_reason = models.CharField(
        max_length=1000,
        blank=True,
        default="",
        db_default="",
        help_text="Why the close did not issue this draft: usage it cannot price, or usage "
        "from a fallback source (observed usage because SolusIO's /usage was unusable); "
        "several reasons are joined with '; '.",
    )
    fingerprint = models.CharField(max_length=64, blank=True)
    generated_at = models.DateTimeField()
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period", "customer_id"]
        constraints = [
            # A void invoice steps aside: correcting one leaves it (and its credit note)
            # beside the new draft, and still only one live invoice per (customer, period).
            models.UniqueConstraint(
                fields=["customer", "period"],
                condition=~Q(status=InvoiceStatus.VOID),
                name="invoice_once_per_period",
            ),
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
        return f"{self.display_number} ({self.period:%Y-%m})"

    @property
    def display_number(self) -> str:
        return f"INV-{self.number:06d}" if self.number else f"draft #{self.pk}"

    @property
    def payment_reference(self) -> str:
        """The ISO 11649 creditor reference a bank transfer quotes ("RF78000000123");
        empty for a draft. Derived from the number, never stored."""
        from payments import references  # payments builds on usage; this module is pure

        return references.for_invoice(self.number) if self.number else ""

    @property
    def printed_payment_reference(self) -> str:
        """The reference as people copy it, in groups of four: "RF78 0000 0012 3"."""
        from payments import references

        return references.grouped(self.payment_reference)

    @property
    def is_frozen(self) -> bool:
        return self.status != InvoiceStatus.DRAFT


class CreditNoteKind(models.TextChoices):
    VOID = "void", "Void"
    CORRECTION = "correction", "Correction"


class CreditNote(models.Model):
    """The full reversal of an issued invoice (void or correction): its own gap-free number,
    the invoice's lines, taxes and total negated, and the invoice's frozen legal details.
    One per invoice (a constraint), so a retried void never credits twice."""

    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, related_name="credit_note")
    number = models.PositiveBigIntegerField(unique=True)
    kind = models.CharField(max_length=16, choices=CreditNoteKind.choices)
    reason = models.CharField(max_length=500)
    issued_at = models.DateTimeField()
    currency = models.CharField(max_length=3)
    tokens = models.BigIntegerField()
    subtotal = models.DecimalField(max_digits=20, decimal_places=4)
    tax_total = models.DecimalField(max_digits=20, decimal_places=4)
    total = models.DecimalField(max_digits=20, decimal_places=4)
    # The invoice's tax lines and lines with amounts negated (invoice_states.credit_values).
    taxes = models.JSONField(default=list)
    lines = models.JSONField(default=list)
    legal = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=CreditNoteKind.values), name="credit_note_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.display_number} for {self.invoice.display_number}"

    @property
    def display_number(self) -> str:
        return f"CN-{self.number:06d}"


class InvoiceLine(models.Model):
    """A usage item's charge: copied from the usage row so the invoice stands on its own."""

    # No index of its own: the unique (invoice, position) index leads with it, and a close
    # writes a million lines or more (one index write a line fewer).
    invoice = models.ForeignKey(
        Invoice, on_delete=models.CASCADE, related_name="lines", db_index=False
    )
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
    backup_price = models.DecimalField(
        max_digits=9, decimal_places=4, null=True, blank=True, help_text="Percent (rule R7)."
    )

    class Meta:
        ordering = ["invoice_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoiceline_position"),
        ]

    def __str__(self) -> str:
        return f"{self.server_name} ({self.get_item_display()}, {self.hours} h)"


class InvoiceEmail(Delivery):
    """The delivery of an issued invoice to its customer: written in the transaction that
    issues the invoice (one per invoice, a constraint), sent by a Celery task after commit,
    retried with backoff, and re-sent by the sweep when the broker lost the message."""

    invoice = models.OneToOneField(Invoice, on_delete=models.CASCADE, related_name="email")

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
                condition=Q(state__in=DeliveryState.values), name="invoice_email_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id} {self.state}"


class CreditNoteEmail(Delivery):
    """The delivery of a credit note to its customer, as an invoice's (InvoiceEmail): written
    in the transaction that issues the credit note, one per credit note (a constraint)."""

    credit_note = models.OneToOneField(CreditNote, on_delete=models.CASCADE, related_name="email")

    class Meta:
        verbose_name = "credit note e-mail"
        indexes = [
            models.Index(
                fields=["next_attempt_at", "created_at"],
                condition=Q(state="pending"),
                name="credit_note_email_pending",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=DeliveryState.values),
                name="credit_note_email_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.credit_note_id} {self.state}"


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


class ObservationPoll(models.Model):
    """One poll of SolusIO's `/servers`. Only a complete poll ends intervals of servers it
    did not see; the latest complete poll says how far observed usage reaches."""

    at = models.DateTimeField(help_text="When the poll read SolusIO's server list.")
    completed_at = models.DateTimeField(null=True, blank=True)
    servers = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    ended = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [
            models.Index(
                fields=["at"], condition=Q(completed_at__isnull=False), name="observe_complete"
            )
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} ({'complete' if self.completed_at else 'incomplete'})"


class ObservedInterval(models.Model):
    """A server in one state (owner, plan and its prices, backups, additional IPs, status)
    from the poll that first saw it so to the poll that saw it change or gone (null: still
    so). One row per change, not per poll: at most one open row per server, and one row
    per (server, start) — constraints, so two polls at once cannot double a row."""

    server_id = models.BigIntegerField()
    server_uuid = models.CharField(max_length=64)
    server_name = models.CharField(max_length=255)
    solusio_user_id = models.BigIntegerField(null=True, blank=True)
    customer = models.ForeignKey(
        Customer,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="observed_intervals",
    )
    plan_id = models.BigIntegerField(null=True, blank=True)
    plan_name = models.CharField(max_length=255, blank=True)
    # SolusIO's prices of the plan when observed (null: the plan was not in `/plans`).
    tokens_per_hour = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_month = models.PositiveIntegerField(null=True, blank=True)
    ip_tokens_per_hour = models.PositiveIntegerField(null=True, blank=True)
    ip_tokens_per_month = models.PositiveIntegerField(null=True, blank=True)
    backups_enabled = models.BooleanField(null=True, blank=True)
    # The plan's paid-backup price when observed, as UsageRecord.backup_price (R7).
    backup_price = models.DecimalField(
        max_digits=9, decimal_places=4, null=True, blank=True, help_text="Percent (rule R7)."
    )
    additional_ips = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=32)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["server_id", "started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["server_id", "started_at"], name="observed_interval_start_unique"
            ),
            models.UniqueConstraint(
                fields=["server_id"],
                condition=Q(ended_at__isnull=True),
                name="observed_interval_one_open",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("started_at")),
                name="observed_interval_ordered",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "started_at"], name="observed_customer"),
            models.Index(fields=["started_at"], name="observed_started"),
        ]

    def __str__(self) -> str:
        end = f"{self.ended_at:%Y-%m-%d %H:%M}" if self.ended_at else "now"
        return f"{self.server_name} {self.started_at:%Y-%m-%d %H:%M} – {end}"


class UsageSourceGap(models.Model):
    """A server, or its paid backups, that one usage source billed and the other did not
    see in the period (USAGE_SOURCE=both), listed for staff."""

    class Seen(models.TextChoices):
        USAGE_API_ONLY = "usage_api", "Only in /usage"
        OBSERVED_ONLY = "observed", "Only observed"

    period = models.DateField()
    server_id = models.BigIntegerField()
    item = models.CharField(
        max_length=64,
        default=UsageItemKind.SERVER,
        help_text="What one source alone saw: the server, or its paid backups.",
    )
    server_name = models.CharField(max_length=255)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    seen_by = models.CharField(max_length=16, choices=Seen.choices)
    hours = models.PositiveIntegerField(help_text="Hours the source that saw it counts.")

    class Meta:
        ordering = ["-period", "server_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "server_id", "item"], name="usage_source_gap_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.period:%Y-%m} {self.server_name} ({self.item}): {self.get_seen_by_display()}"


class CloseRunState(models.TextChoices):
    PULLING = "pulling", "Pulling usage"
    BUILDING = "building", "Building invoices"
    ISSUING = "issuing", "Issuing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


ACTIVE_CLOSE_STATES = (CloseRunState.PULLING, CloseRunState.BUILDING, CloseRunState.ISSUING)


class CloseRun(models.Model):
    """One cycle close (usage/workflow.py): the source of truth of its progress. Its stages
    run as Celery tasks on any worker host (or inline in one process); the pull and the
    issuing step are leased like the shards, so a sweep can hand a lost one to another
    worker. At most one active run per period (a constraint)."""

    period = models.DateField(help_text="First day of the billing month.")
    customer = models.ForeignKey(
        Customer,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Only this customer's invoice was closed.",
    )
    pull = models.BooleanField(default=True, help_text="Off: built from the stored usage.")
    auto_issue = models.BooleanField(default=False)
    inline = models.BooleanField(default=False, help_text="Ran in one process, not on Celery.")
    state = models.CharField(max_length=16, choices=CloseRunState.choices)
    source = models.CharField(max_length=16, blank=True)
    fallback_reason = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # The pull and the issuing step: who holds them, until when (renewed as they progress).
    stage_attempts = models.PositiveIntegerField(default=0)
    stage_host = models.CharField(max_length=255, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    rows = models.PositiveIntegerField(default=0, help_text="Usage rows pulled (or stored).")
    orphans = models.PositiveIntegerField(default=0)
    customers = models.PositiveIntegerField(default=0, help_text="Customers to build.")
    shards_total = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    frozen = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    issued = models.PositiveIntegerField(default=0)
    held = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    seconds = models.JSONField(default=dict, blank=True, help_text="Wall time per stage.")
    # The pull its pull shards store into (usage.pull): set when the pull is cut into them.
    pull_generation = models.PositiveIntegerField(null=True, blank=True)
    pull_fresh = models.BooleanField(
        default=False, help_text="The period had no stored usage when the pull began."
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["period"],
                condition=Q(state__in=[s.value for s in ACTIVE_CLOSE_STATES]),
                name="closerun_one_active_per_period",
            ),
        ]

    def __str__(self) -> str:
        return f"close of {self.period:%Y-%m} #{self.pk} ({self.get_state_display()})"


class CloseShardState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class CloseShardStage(models.TextChoices):
    PULL = "pull", "Pull"
    BUILD = "build", "Build"


class CloseShard(models.Model):
    """A part of a close one task does: a range of `/usage` pages (or of observed server
    ids) whose rows it stores, or a range of customer ids whose drafts it builds. A worker
    claims it by an atomic state change (its attempt number is the fence: a late,
    superseded attempt writes no outcome) and holds it under a lease renewed after every
    batch."""

    run = models.ForeignKey(CloseRun, on_delete=models.CASCADE, related_name="shards")
    stage = models.CharField(
        max_length=8, choices=CloseShardStage.choices, default=CloseShardStage.BUILD
    )
    index = models.PositiveIntegerField()
    # A build shard's customers.
    first_customer = models.BigIntegerField(null=True, blank=True)
    last_customer = models.BigIntegerField(null=True, blank=True)
    customers = models.PositiveIntegerField(default=0)
    # A pull shard's part: `/usage` pages [first, last] (no last: to the end), or observed
    # server ids [first, last).
    first_part = models.BigIntegerField(null=True, blank=True)
    last_part = models.BigIntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField(default=0, help_text="Usage rows stored so far.")
    orphans = models.PositiveIntegerField(default=0)
    state = models.CharField(
        max_length=16, choices=CloseShardState.choices, default=CloseShardState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True, help_text="Host and process id.")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    built = models.PositiveIntegerField(default=0, help_text="Customers built so far.")
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    frozen = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run_id", "-stage", "index"]  # pull shards first
        constraints = [
            models.UniqueConstraint(fields=["run", "stage", "index"], name="closeshard_index"),
        ]

    def __str__(self) -> str:
        return f"{self.stage} shard {self.index} ({self.part})"

    @property
    def part(self) -> str:
        """What the shard covers, for staff."""
        if self.stage == CloseShardStage.BUILD:
            return f"customers {self.first_customer}–{self.last_customer}"
        if self.first_part is None or self.last_part is None:
            return f"pages {self.first_part}–end" if self.first_part else "all usage"
        if self.run.source != "observed":
            return f"pages {self.first_part}–{self.last_part}"
        # Observed server ids [first, last): the outer ranges are open-ended.
        low = "" if self.first_part < 0 else str(self.first_part)
        high = "" if self.last_part >= (1 << 63) - 1 else str(self.last_part - 1)
        return f"servers {low}–{high}"
