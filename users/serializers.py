"""Staff API serializers for customers. The importer validates rows with the same class."""

from typing import Any

from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from bridge.db import MAX_BIGINT
from pricing.models import Discount
from pricing.serializers import (
    CurrencyCodeRelatedField,
    ImmutableKeyMixin,
    ModelCleanMixin,
    country_field,
)
from users import services
from users.models import INVOICE_DETAIL_FIELDS, Customer, LimitGroup, SolusioAccount, SyncRecord


class CustomerSerializer(ImmutableKeyMixin, ModelCleanMixin):
    """A customer of the billing system, and a user in SolusIO."""

    id = serializers.IntegerField(
        min_value=1,
        max_value=MAX_BIGINT,
        required=False,
        validators=[
            UniqueValidator(Customer.objects.all(), "A customer with this id already exists.")
        ],
        help_text=(
            "Billing user id (SolusIO's billing_user_id). Optional on create, to keep the id "
            "another billing system used; the next free id otherwise. Ignored on update."
        ),
    )
    email = serializers.EmailField(max_length=254)
    currency = CurrencyCodeRelatedField(help_text="ISO 4217 code of one of the currencies.")
    country = country_field(help_text="ISO 3166-1 alpha-2 code, e.g. GB.")
    discounts = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=Discount.objects.all(),
        required=False,
        help_text="Ids of the discounts that apply to this customer.",
        error_messages={"does_not_exist": "No discount with id {pk_value}."},
    )
    limit_group = serializers.PrimaryKeyRelatedField(
        queryset=LimitGroup.objects.filter(in_solusio=True),
        allow_null=True,
        required=False,
        help_text="SolusIO limit group id (Step 5); on create, empty = the default group.",
        error_messages={"does_not_exist": "No SolusIO limit group with id {pk_value}."},
    )
    sync_state = serializers.SerializerMethodField(
        help_text="SolusIO sync: synced, pending, parked (needs staff), or null if never."
    )
    sync_error = serializers.SerializerMethodField(help_text="The last sync error, if any.")
    solusio_user_id = serializers.SerializerMethodField(help_text="The linked SolusIO user.")

    class Meta:
        model = Customer
        fields = [
            "id",
            "email",
            "name",
            "currency",
            "country",
            "region",
            "billing_exempt",
            "status",
            "discounts",
            "limit_group",
            *INVOICE_DETAIL_FIELDS,
            "language",
            "solusio_user_id",
            "sync_state",
            "sync_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        immutable_fields = ["id"]

    @staticmethod
    def _account(obj: Customer) -> SolusioAccount | None:
        try:
            return obj.solusio
        except SolusioAccount.DoesNotExist:
            return None

    def get_sync_state(self, obj: Customer) -> str | None:
        account = self._account(obj)
        return account.state if account else None

    def get_sync_error(self, obj: Customer) -> str:
        account = self._account(obj)
        return account.last_error if account else ""

    def get_solusio_user_id(self, obj: Customer) -> int | None:
        account = self._account(obj)
        return account.solusio_user_id if account else None

    def validate_email(self, value: str) -> str:
        # SolusIO finds users by e-mail: two customers differing only in case would be
        # one SolusIO user.
        others = Customer.objects.filter(email__iexact=value)
        if isinstance(self.instance, Customer):
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError("A customer with this e-mail already exists.")
        return value

    def create(self, validated_data: dict[str, Any]) -> Customer:
        return services.create_customer(**validated_data)

    def update(self, instance: Customer, validated_data: dict[str, Any]) -> Customer:
        discounts = validated_data.pop("discounts", None)
        return services.update_customer(
            customer=instance, changes=validated_data, discounts=discounts
        )


class SyncRecordSerializer(serializers.ModelSerializer):
    """One change told (or still to tell) SolusIO: the outbox row."""

    class Meta:
        model = SyncRecord
        fields = [
            "id",
            "customer_id",
            "action",
            "payload",
            "reason",
            "state",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields


class CountSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="How many records or customers it applied to.")
