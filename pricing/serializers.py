"""Staff API serializers for prices. The importer validates rows with the same classes.

Validation mirrors the model: field validators come from the model fields, and each
serializer runs the model's clean() on the would-be instance, so the rules live in one
place and a violation is a 400 naming the field, never an IntegrityError.
"""

import copy
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from pricing import calc
from pricing.models import (
    Currency,
    Discount,
    Plan,
    PricingSettings,
    TaxRule,
    country_validator,
    currency_code_validator,
)

GREATER_THAN_ZERO = "Must be greater than 0."


class UpperCaseCharField(serializers.CharField):
    """ISO codes: staff may type "gb" or "usd"; stored upper case."""

    def to_internal_value(self, data: Any) -> str:
        return super().to_internal_value(data).upper()


class CurrencyCodeRelatedField(serializers.SlugRelatedField):
    """A currency given by its code, in any case."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("slug_field", "code")
        kwargs.setdefault("queryset", Currency.objects.all())
        kwargs.setdefault("error_messages", {"does_not_exist": "No currency with code {value}."})
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Currency:
        if isinstance(data, str):
            data = data.strip().upper()
        return super().to_internal_value(data)


def country_field(**kwargs: Any) -> UpperCaseCharField:
    return UpperCaseCharField(
        max_length=2,
        allow_blank=True,
        required=False,
        validators=[country_validator],
        **kwargs,
    )


class ModelCleanMixin(serializers.ModelSerializer):
    """Run the model's clean() on the instance as it would be saved (the stored values
    overlaid with the input, so partial updates are checked as a whole)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        model: type[models.Model] = self.Meta.model
        instance = self.instance if isinstance(self.instance, model) else None
        candidate = copy.copy(instance) if instance is not None else model()
        for name, value in attrs.items():
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if not field.many_to_many:
                setattr(candidate, name, value)
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(serializers.as_serializer_error(exc)) from exc
        return attrs


class ImmutableKeyMixin(serializers.ModelSerializer):
    """Fields listed in Meta.immutable_fields are writable on create only: they are ids
    other systems hold (SolusIO plan ids, billing user ids, currency codes). On update
    they are ignored, like any read-only field."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if isinstance(self.instance, models.Model):
            for name in getattr(self.Meta, "immutable_fields", ()):
                fields[name].read_only = True
        return fields


class CurrencySerializer(ImmutableKeyMixin, ModelCleanMixin):
    """A currency and the price of one token in it (Step 1)."""

    code = UpperCaseCharField(
        max_length=3,
        validators=[
            currency_code_validator,
            UniqueValidator(Currency.objects.all(), "A currency with this code already exists."),
        ],
        help_text="ISO 4217 code, e.g. USD. Set on create; ignored on update.",
    )
    # Whitespace is meaningful here (" USD", a space as thousands separator): no trimming.
    display_prefix = serializers.CharField(
        max_length=8, allow_blank=True, required=False, trim_whitespace=False
    )
    display_suffix = serializers.CharField(
        max_length=8, allow_blank=True, required=False, trim_whitespace=False
    )
    thousands_separator = serializers.CharField(
        max_length=1, allow_blank=True, required=False, trim_whitespace=False
    )
    decimals_separator = serializers.CharField(
        max_length=1, min_length=1, required=False, trim_whitespace=False
    )

    class Meta:
        model = Currency
        fields = [
            "code",
            "token_price",
            "display_prefix",
            "display_suffix",
            "decimals",
            "thousands_separator",
            "decimals_separator",
        ]
        immutable_fields = ["code"]
        extra_kwargs = {"token_price": {"error_messages": {"min_value": GREATER_THAN_ZERO}}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        def value(name: str, default: str) -> str:
            if name in attrs:
                return str(attrs[name])
            return getattr(self.instance, name) if isinstance(self.instance, Currency) else default

        thousands = value("thousands_separator", ",")
        decimals = value("decimals_separator", ".")
        if thousands and thousands == decimals:
            # Name the field the caller sent, so the message points at what to fix.
            field = "decimals_separator" if "decimals_separator" in attrs else "thousands_separator"
            raise serializers.ValidationError(
                {field: ["The thousands and decimals separators must differ."]}
            )
        return super().validate(attrs)


class DiscountSerializer(ModelCleanMixin):
    """A discount: a multiplier on the token price, valid in [valid_from, valid_until)."""

    class Meta:
        model = Discount
        fields = ["id", "name", "description", "multiplier", "valid_from", "valid_until"]
        extra_kwargs = {"multiplier": {"error_messages": {"min_value": GREATER_THAN_ZERO}}}


class TaxRuleSerializer(ModelCleanMixin):
    """A tax rate for everywhere, a country, or a region of a country."""

    country = country_field(help_text="ISO 3166-1 alpha-2 code; blank = every country.")

    class Meta:
        model = TaxRule
        fields = ["id", "label", "rate", "country", "region", "order"]


class PlanSerializer(ImmutableKeyMixin, ModelCleanMixin):
    """A SolusIO plan, its prices in tokens and the Step 2 price book."""

    aggregated_tokens_per_month = serializers.SerializerMethodField(
        help_text="Step 2: tokens per hour × 24 hours × 31 days."
    )
    suggested_tokens_per_month = serializers.SerializerMethodField(
        help_text="The aggregated month rounded down to a round number (5208 → 5000)."
    )

    class Meta:
        model = Plan
        fields = [
            "id",
            "name",
            "tokens_per_hour",
            "tokens_per_month",
            "aggregated_tokens_per_month",
            "suggested_tokens_per_month",
        ]
        immutable_fields = ["id"]
        extra_kwargs = {
            "id": {
                "help_text": "The plan's id in SolusIO. Set on create; ignored on update.",
                "validators": [
                    UniqueValidator(Plan.objects.all(), "A plan with this id already exists.")
                ],
            }
        }

    def get_aggregated_tokens_per_month(self, plan: Plan) -> int:
        return calc.aggregated_month_tokens(plan.tokens_per_hour)

    def get_suggested_tokens_per_month(self, plan: Plan) -> int:
        return calc.suggested_monthly_tokens(calc.aggregated_month_tokens(plan.tokens_per_hour))


class PricingSettingsSerializer(serializers.ModelSerializer):
    """Settings that apply to every customer's pricing."""

    class Meta:
        model = PricingSettings
        fields = ["taxes_compound"]


# --- Documentation only: the GetTokenPricing answer, for the schema of the preview -------
# The preview returns the exact bytes GetTokenPricing serves (numbers as JSON numbers), so
# this serializer never renders anything; it describes the shape.


def _number(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=None, decimal_places=None, coerce_to_string=False, **kwargs
    )


TokenPricingAnswerSerializer = inline_serializer(
    name="TokenPricingAnswer",
    fields={
        "base_token_unit_cost": _number(),
        "user_token_unit_cost": _number(help_text="After discounts and taxes; 0 if exempt."),
        "currency": inline_serializer(
            name="TokenPricingCurrency",
            fields={
                "code": serializers.CharField(),
                "display_prefix": serializers.CharField(),
                "display_suffix": serializers.CharField(),
                "decimals": serializers.IntegerField(),
                "thousands_separator": serializers.CharField(),
                "decimals_separator": serializers.CharField(),
            },
        ),
        "discounts": inline_serializer(
            name="TokenPricingDiscount",
            many=True,
            fields={
                "name": serializers.CharField(),
                "description": serializers.CharField(),
                "multipler": _number(help_text="Spelled as SolusIO reads it."),
            },
        ),
        "taxes": inline_serializer(
            name="TokenPricingTaxes",
            fields={
                "compound": serializers.BooleanField(),
                "rates": inline_serializer(
                    name="TokenPricingTaxRate",
                    many=True,
                    fields={"label": serializers.CharField(), "rate": _number()},
                ),
            },
        ),
    },
)
