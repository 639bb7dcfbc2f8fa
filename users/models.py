"""Customers: the billing system's users, each one a SolusIO user (billing_user_id = id)."""

from django.db import models

from pricing.models import Currency, Discount, country_validator


class CustomerStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    LOCKED = "locked", "Locked"
    SUSPENDED = "suspended", "Suspended"


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
    billing_exempt = models.BooleanField(
        default=False, help_text="Exempt customers are never charged: token cost 0."
    )
    status = models.CharField(
        max_length=16, choices=CustomerStatus.choices, default=CustomerStatus.ACTIVE
    )
    discounts = models.ManyToManyField(Discount, blank=True, related_name="customers")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=CustomerStatus.values), name="customer_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.email}"
