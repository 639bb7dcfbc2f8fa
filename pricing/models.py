"""Prices: currencies and their token price, discounts, tax rules, the plan price book.

Money and token prices are Decimal; tokens are integers. Invariants that the database can
hold are check constraints, so neither the admin, the API nor an import can break them.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from bridge.models import SingletonModel

# Eight decimal places at least (Standards); ten leave room for sub-micro token prices.
TOKEN_PRICE_DECIMALS = 10

currency_code_validator = RegexValidator(r"^[A-Z]{3}$", "Use the ISO 4217 code, e.g. USD.")
country_validator = RegexValidator(r"^([A-Z]{2})?$", "Use the ISO 3166-1 alpha-2 code, e.g. GB.")


class Currency(models.Model):
    code = models.CharField(
        primary_key=True,
        max_length=3,
        validators=[currency_code_validator],
        help_text="ISO 4217 code, e.g. USD.",
    )
    token_price = models.DecimalField(
        max_digits=20,
        decimal_places=TOKEN_PRICE_DECIMALS,
        validators=[MinValueValidator(Decimal("0.0000000001"))],
        help_text="Price of one token in this currency, before discounts and taxes.",
    )
    display_prefix = models.CharField(max_length=8, blank=True)
    display_suffix = models.CharField(max_length=8, blank=True)
    decimals = models.PositiveSmallIntegerField(
        default=2,
        validators=[MaxValueValidator(4)],
        help_text="Minor-unit digits invoices round to (2 for USD, 0 for JPY).",
    )
    thousands_separator = models.CharField(max_length=1, blank=True, default=",")
    decimals_separator = models.CharField(max_length=1, default=".")

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "currencies"
        constraints = [
            models.CheckConstraint(
                condition=Q(token_price__gt=0), name="currency_token_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(decimals__lte=4), name="currency_decimals_at_most_4"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        if self.thousands_separator and self.thousands_separator == self.decimals_separator:
            raise ValidationError("The thousands and decimals separators must differ.")


class Discount(models.Model):
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=255, blank=True)
    multiplier = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        validators=[MinValueValidator(Decimal("0.000001")), MaxValueValidator(Decimal("1"))],
        help_text="0 < multiplier ≤ 1; 0.95 is a 5 % discount.",
    )
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(
        null=True, blank=True, help_text="Exclusive: the discount stops applying at this instant."
    )

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(multiplier__gt=0, multiplier__lte=1), name="discount_multiplier_range"
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_from__lt=models.F("valid_until")),
                name="discount_validity_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (×{self.multiplier.normalize()})"

    def clean(self) -> None:
        if self.valid_from and self.valid_until and self.valid_from >= self.valid_until:
            raise ValidationError({"valid_until": "Must be after valid from."})


class TaxRule(models.Model):
    label = models.CharField(max_length=100)
    rate = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Percent: 6 means 6 %.",
    )
    country = models.CharField(
        max_length=2,
        blank=True,
        validators=[country_validator],
        help_text="ISO country code it applies to; blank = every country.",
    )
    region = models.CharField(
        max_length=100,
        blank=True,
        help_text="Region (state, county, city) within the country; blank = the whole country.",
    )
    order = models.PositiveIntegerField(
        default=0, help_text="Taxes apply in this order (matters when they compound)."
    )

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rate__gte=0, rate__lte=100), name="taxrule_rate_range"
            ),
            models.CheckConstraint(
                condition=Q(region="") | ~Q(country=""), name="taxrule_region_needs_country"
            ),
        ]

    def __str__(self) -> str:
        where = "/".join(p for p in (self.country, self.region) if p) or "everywhere"
        return f"{self.label} {self.rate.normalize()} % ({where})"

    def clean(self) -> None:
        if self.region and not self.country:
            raise ValidationError({"country": "A region needs its country."})


class PricingSettings(SingletonModel):
    """The one row of staff-editable pricing settings."""

    taxes_compound = models.BooleanField(
        default=False,
        help_text="Compound: each tax applies to the amount including the taxes before it.",
    )

    class Meta(SingletonModel.Meta):
        verbose_name = "pricing settings"
        verbose_name_plural = "pricing settings"


class Plan(models.Model):
    """A SolusIO plan and its prices in tokens (Steps 2 and 3)."""

    id = models.PositiveIntegerField(primary_key=True, help_text="The plan's id in SolusIO.")
    name = models.CharField(max_length=255)
    tokens_per_hour = models.PositiveIntegerField(default=0)
    tokens_per_month = models.PositiveIntegerField(
        default=0, help_text="Monthly cap and fixed monthly price; 0 = hourly only."
    )
    # What SolusIO last said (mirror): the price book above is ours, these are SolusIO's,
    # and the admin shows where they disagree until the prices are pushed (Step 3).
    solusio_tokens_per_hour = models.PositiveIntegerField(null=True, blank=True, editable=False)
    solusio_tokens_per_month = models.PositiveIntegerField(null=True, blank=True, editable=False)
    in_solusio = models.BooleanField(default=True, editable=False)
    mirrored_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def agrees_with_solusio(self) -> bool | None:
        """None when the plan was never mirrored; else whether SolusIO has our prices."""
        if self.mirrored_at is None:
            return None
        return (
            self.in_solusio
            and self.solusio_tokens_per_hour == self.tokens_per_hour
            and self.solusio_tokens_per_month == self.tokens_per_month
        )


class PricingGeneration(models.Model):
    """The pricing generation, one row, on databases other than PostgreSQL (which uses a
    sequence): every change to what feeds GetTokenPricing bumps it in the change's own
    transaction; the cache in Redis mirrors it (pricing/answercache.py). No admin."""

    value = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "pricing generation"

    def __str__(self) -> str:
        return f"pricing generation {self.value}"
