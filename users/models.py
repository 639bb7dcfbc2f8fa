"""Customers: the billing system's users, each one a SolusIO user (billing_user_id = id)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from bridge.models import SingletonModel
from pricing.models import Currency, Discount, country_validator


class CustomerStatus(models.TextChoices):
    # Translated: the portal shows the customer their status in their language.
    ACTIVE = "active", _("Active")
    LOCKED = "locked", _("Locked")
    SUSPENDED = "suspended", _("Suspended")


def language_choices() -> list[tuple[str, str]]:
    """settings.LANGUAGES: a callable, so adding a language is a setting, not a migration."""
    return list(settings.LANGUAGES)


def default_language() -> str:
    return settings.LANGUAGE_CODE


# What an invoice names the customer by (DESIGN §6); copied onto each invoice on issue.
INVOICE_DETAIL_FIELDS = ("company_name", "billing_address", "vat_id", "tax_exemption_reason")


class Customer(models.Model):
    # The billing user id SolusIO sends as `userid` and stores as `billing_user_id`.
    # Explicit ids are allowed (imports keep the old billing system's ids).
    id = models.BigAutoField(primary_key=True, verbose_name="billing user id")
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=255, blank=True)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="customers")
    country = models.CharField(
        max_length=2, blank=True, validators=[country_validator], help_text="ISO 3166-1 alpha-2."
    )
    region = models.CharField(max_length=100, blank=True)
    company_name = models.CharField(max_length=255, blank=True)
    billing_address = models.TextField(blank=True, help_text="Postal address, one line per row.")
    vat_id = models.CharField("VAT id", max_length=64, blank=True)
    tax_exemption_reason = models.CharField(
        max_length=255,
        blank=True,
        help_text="Printed where no tax is charged, e.g. 'Reverse charge: VAT to be accounted "
        "for by the recipient (Art. 196 Directive 2006/112/EC)'.",
    )
    billing_exempt = models.BooleanField(
        default=False, help_text="Exempt customers are never charged: token cost 0."
    )
    # Invoices, e-mails and the portal speak it (issue 12 §5); an issued invoice's frozen
    # details are values, so changing it re-renders the same invoice in the new language.
    language = models.CharField(
        max_length=16,
        choices=language_choices,
        default=default_language,
        help_text="Invoices, e-mails and the customer portal use this language.",
    )
    status = models.CharField(
        max_length=16, choices=CustomerStatus.choices, default=CustomerStatus.ACTIVE
    )
    discounts = models.ManyToManyField(Discount, blank=True, related_name="customers")
    # None = the default limit group staff chose (SolusioDefaults).
    limit_group = models.ForeignKey(
        "users.LimitGroup",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="customers",
        help_text="Empty: the default limit group.",
    )
    # The login for the customer pages (/account/); staff give it a password.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customer",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=CustomerStatus.values), name="customer_status_valid"
            ),
        ]
        # A one-time login into the customer's SolusIO panel: its own grant, never implied
        # by viewing or changing customers.
        permissions = [("log_in_as_customer", "Can log in as the customer (SolusIO control panel)")]

    def __str__(self) -> str:
        return f"#{self.id} {self.email}"


class LimitGroup(models.Model):
    """A SolusIO limit group (Step 5), mirrored: SolusIO owns it, staff pick one per customer."""

    id = models.PositiveIntegerField(primary_key=True, help_text="The limit group's id in SolusIO.")
    name = models.CharField(max_length=255)
    # 0 with is_enabled False means "no limit", as SolusIO shows it.
    vms_limit = models.PositiveIntegerField(default=0)
    vms_enabled = models.BooleanField(default=False)
    running_vms_limit = models.PositiveIntegerField(default=0)
    running_vms_enabled = models.BooleanField(default=False)
    additional_ips_limit = models.PositiveIntegerField(default=0)
    additional_ips_enabled = models.BooleanField(default=False)
    # False once SolusIO no longer lists it; kept so customers pointing at it still load.
    in_solusio = models.BooleanField(default=True)
    mirrored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name if self.in_solusio else f"{self.name} (gone from SolusIO)"


class SolusioDefaults(SingletonModel):
    """The one row of staff-chosen defaults for new SolusIO users."""

    default_limit_group = models.ForeignKey(
        LimitGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For customers without their own limit group (Step 5).",
    )

    class Meta(SingletonModel.Meta):
        verbose_name = "SolusIO defaults"
        verbose_name_plural = "SolusIO defaults"


class SyncState(models.TextChoices):
    SYNCED = "synced", "In sync"
    PENDING = "pending", "Pending"
    PARKED = "parked", "Parked (needs staff)"


class SolusioAccount(models.Model):
    """A customer's link to its SolusIO user and the state of its sync.

    Not a cascade of Customer: when a customer is deleted this row stays until the delete
    has reached SolusIO (the delivery needs the SolusIO user id), so no database FK.
    """

    customer = models.OneToOneField(
        Customer,
        primary_key=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="solusio",
    )
    solusio_user_id = models.PositiveBigIntegerField(null=True, blank=True, unique=True)
    state = models.CharField(max_length=16, choices=SyncState.choices, default=SyncState.PENDING)
    last_error = models.TextField(blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "SolusIO account"

    def __str__(self) -> str:
        return f"customer {self.customer_id} → SolusIO user {self.solusio_user_id or '?'}"


class SyncAction(models.TextChoices):
    UPSERT = "upsert", "Create or update"
    DELETE = "delete", "Delete"


class SyncRecordState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Delivered"
    PARKED = "parked", "Parked"


class SyncRecord(models.Model):
    """The outbox: one row per customer change, written in the change's transaction.

    `payload` is the whole desired SolusIO user (not a diff), so delivering a record twice
    sets the same values twice and a record never depends on an earlier one's outcome.
    Records of one customer are delivered in id order; ids are drawn while the customer
    row is locked, so id order is the order the changes were made.
    """

    customer_id = models.BigIntegerField(db_index=True)
    action = models.CharField(max_length=8, choices=SyncAction.choices)
    payload = models.JSONField()
    reason = models.CharField(max_length=255, blank=True)
    state = models.CharField(
        max_length=8, choices=SyncRecordState.choices, default=SyncRecordState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # Retrying a parked record sends a change SolusIO refused once: a deliberate act,
        # so it is a permission of its own rather than `view` or `add`.
        permissions = [("retry_syncrecord", "Can retry parked SolusIO sync records")]
        indexes = [
            # The sweep and "next record of this customer" both read undelivered rows only.
            models.Index(
                fields=["customer_id", "id"],
                name="syncrecord_open_idx",
                condition=~Q(state="done"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=SyncRecordState.values), name="syncrecord_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(action__in=SyncAction.values), name="syncrecord_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.action} customer {self.customer_id} ({self.state})"


class LoginAudit(models.Model):
    """Every single sign-on into SolusIO: who asked, for which customer, and the outcome.

    The token itself is never stored.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    customer_id = models.BigIntegerField(db_index=True)
    # The staff member who logged in as the customer; empty when the customer did.
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    staff_username = models.CharField(max_length=150, blank=True)
    outcome = models.CharField(max_length=32)
    detail = models.CharField(max_length=255, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name = "SolusIO login"

    def __str__(self) -> str:
        who = self.staff_username or "customer"
        return f"{self.at:%Y-%m-%d %H:%M} {who} → customer {self.customer_id}: {self.outcome}"


class ReconcileRunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ReconcileRun(models.Model):
    """One reconciliation (beat, `solusio_reconcile`, or staff's "Reconcile now") and its
    report, so staff can read in the admin what the last one found."""

    requested_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Who asked: "beat", "command", or "admin: <username>".
    trigger = models.CharField(max_length=160)
    fix = models.BooleanField(default=True, help_text="Drifted customers queued for sync.")
    state = models.CharField(
        max_length=8, choices=ReconcileRunState.choices, default=ReconcileRunState.QUEUED
    )
    # ReconcileReport.counts(): solusio_users, customers, unknown_users, missing, drift,
    # duplicates, in_flight, fixed.
    counts = models.JSONField(default=dict, blank=True)
    # ReconcileReport.lines(): one readable line per finding.
    details = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "SolusIO reconciliation"
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=ReconcileRunState.values), name="reconcilerun_state_valid"
            ),
        ]

    # The counts in reading order, with the words staff read them by.
    COUNT_LABELS = {
        "solusio_users": "SolusIO users",
        "customers": "customers",
        "unknown_users": "users with no customer",
        "missing": "missing in SolusIO",
        "drift": "drift",
        "duplicates": "duplicate billing ids",
        "in_flight": "skipped (change on its way)",
        "fixed": "queued for sync",
    }

    def __str__(self) -> str:
        return f"reconciliation #{self.pk} {self.requested_at:%Y-%m-%d %H:%M} ({self.state})"

    def labelled_counts(self) -> list[tuple[str, int]]:
        return [
            (label, self.counts[key])
            for key, label in self.COUNT_LABELS.items()
            if key in self.counts
        ]
