"""Import prices and customers from another billing system (the format is in the README).

One JSON file, one transaction: every row is validated by the staff API's serializer and
created or updated by its key (`code` for currencies, `id` for the rest), so importing a
file twice leaves the same state. The first bad row aborts the whole file and names the
section, the row and the field; nothing is written.
"""

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, models, transaction
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.settings import api_settings

from bridge.db import MAX_BIGINT, advance_id_sequence
from pricing.models import Currency, Discount, Plan, PricingSettings, TaxRule
from pricing.serializers import (
    CurrencySerializer,
    DiscountSerializer,
    PlanSerializer,
    PricingSettingsSerializer,
    TaxRuleSerializer,
)
from usage.models import SELLER_FIELDS, BillingSettings
from usage.serializers import SellerSerializer
from users.models import Customer
from users.serializers import CustomerSerializer

DEMO_DATA_PATH = Path(settings.BASE_DIR) / "examples" / "demo-billing-data.json"


class ImportFailed(Exception):
    """The file cannot be imported; the message says where and why."""


@dataclass(frozen=True)
class _Section:
    name: str
    model: type[models.Model]
    serializer_class: type[serializers.ModelSerializer]
    key: str
    # The serializer cannot take the id (an auto id): pass it to save() and move the
    # sequence past it afterwards.
    explicit_auto_id: bool = False


ROW_SECTIONS = (
    _Section("currencies", Currency, CurrencySerializer, key="code"),
    _Section("discounts", Discount, DiscountSerializer, key="id", explicit_auto_id=True),
    _Section("tax_rules", TaxRule, TaxRuleSerializer, key="id", explicit_auto_id=True),
    _Section("plans", Plan, PlanSerializer, key="id"),
    _Section("customers", Customer, CustomerSerializer, key="id"),
)
_ROW_SECTION_BY_NAME = {section.name: section for section in ROW_SECTIONS}
SETTINGS_SECTION = "taxes_compound"
SELLER_SECTION = "seller"  # the seller's invoice details (usage.models.BillingSettings)
# The order they are applied in: a row may refer to rows of the sections before it.
SECTIONS = (
    "currencies",
    "discounts",
    "tax_rules",
    SETTINGS_SECTION,
    "plans",
    "customers",
    SELLER_SECTION,
)


@dataclass
class SectionCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class ImportResult:
    dry_run: bool
    counts: dict[str, SectionCounts] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        lines = []
        for name, c in self.counts.items():
            if name in (SETTINGS_SECTION, SELLER_SECTION):
                lines.append(f"{name}: {'updated' if c.updated else 'unchanged'}")
            else:
                lines.append(
                    f"{name}: {c.created} created, {c.updated} updated, {c.unchanged} unchanged"
                )
        if self.dry_run:
            lines.append("Dry run: validated and rolled back, nothing was written.")
        return lines


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def read_file(*, path: Path) -> Any:
    """The file's JSON, with every non-integer number as an exact Decimal."""
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh, parse_float=Decimal, parse_constant=_reject_constant)
    except OSError as exc:
        raise ImportFailed(f"{path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{path}: line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except ValueError as exc:
        raise ImportFailed(f"{path}: {exc}") from exc


def import_billing_data(*, data: Any, dry_run: bool = False) -> ImportResult:
    """Create or update everything in `data` (the parsed file) in one transaction.

    Raises ImportFailed, having written nothing, at the first invalid row.
    """
    if not isinstance(data, Mapping):
        raise ImportFailed(f"The file must hold a JSON object with the keys {_key_list()}.")
    unknown = [key for key in data if key not in SECTIONS]
    if unknown:
        raise ImportFailed(f"Unknown section {unknown[0]!r}; the sections are {_key_list()}.")
    result = ImportResult(dry_run=dry_run)
    with transaction.atomic():
        for name in SECTIONS:
            if name == SETTINGS_SECTION and name in data:
                result.counts[name] = _import_settings(data[name])
            elif name == SELLER_SECTION and name in data:
                result.counts[name] = _import_seller(data[name])
            elif name in data:
                result.counts[name] = _import_rows(_ROW_SECTION_BY_NAME[name], data[name])
        if dry_run:
            transaction.set_rollback(True)
    return result


def _key_list() -> str:
    return ", ".join(SECTIONS)


def _import_settings(value: Any) -> SectionCounts:
    if not isinstance(value, bool):
        # JSON has booleans; "yes" or 1 here is more likely a mistake than a choice.
        raise ImportFailed(f"{SETTINGS_SECTION}: Must be true or false.")
    instance = PricingSettings.load()
    serializer = PricingSettingsSerializer(instance, data={SETTINGS_SECTION: value})
    return _save_one(SETTINGS_SECTION, instance, serializer)


def _save_one(
    section: str, instance: models.Model, serializer: serializers.ModelSerializer
) -> SectionCounts:
    """Validate and save a one-object section (a settings row)."""
    counts = SectionCounts()
    if not serializer.is_valid():
        raise ImportFailed(f"{section}: {_messages(serializer.errors)}")
    if _unchanged(instance, serializer.validated_data):
        counts.unchanged += 1
    else:
        serializer.save()
        counts.updated += 1
    return counts


def _import_seller(value: Any) -> SectionCounts:
    if not isinstance(value, Mapping):
        raise ImportFailed(f"{SELLER_SECTION}: Expected an object, got {_json_type(value)}.")
    unknown = [name for name in value if name not in SELLER_FIELDS]
    if unknown:
        raise ImportFailed(f"{SELLER_SECTION}: {unknown[0]}: Unknown field.")
    instance = BillingSettings.load()
    serializer = SellerSerializer(instance, data=dict(value), partial=True)
    return _save_one(SELLER_SECTION, instance, serializer)


def _import_rows(section: _Section, rows: Any) -> SectionCounts:
    if not isinstance(rows, list):
        raise ImportFailed(f"{section.name}: Expected a list of objects, got {_json_type(rows)}.")
    counts = SectionCounts()
    seen: dict[Any, int] = {}
    created_ids: list[int] = []
    serializer_fields = section.serializer_class().fields
    for index, row in enumerate(rows):
        where = f"{section.name}[{index}]"
        if not isinstance(row, Mapping):
            raise ImportFailed(f"{where}: Expected an object, got {_json_type(row)}.")
        key = _row_key(section, row, where)
        where = f"{where} ({section.key}={key})"
        if key in seen:
            raise ImportFailed(
                f"{where}: {section.key}: Also in {section.name}[{seen[key]}]; give each one row."
            )
        seen[key] = index
        unknown = [name for name in row if name not in serializer_fields]
        if unknown:
            raise ImportFailed(f"{where}: {unknown[0]}: Unknown field.")
        instance = section.model._default_manager.filter(pk=key).first()
        # An existing row is patched: fields the file leaves out keep their values.
        serializer = section.serializer_class(
            instance, data=dict(row), partial=instance is not None
        )
        if not serializer.is_valid():
            raise ImportFailed(f"{where}: {_messages(serializer.errors)}")
        extra = {"id": key} if section.explicit_auto_id and instance is None else {}
        if instance is not None and _unchanged(instance, serializer.validated_data):
            counts.unchanged += 1
            continue
        try:
            serializer.save(**extra)
        except DjangoValidationError as exc:
            errors = serializers.as_serializer_error(exc)
            raise ImportFailed(f"{where}: {_messages(errors)}") from exc
        except IntegrityError as exc:
            raise ImportFailed(f"{where}: Conflicts with existing data ({exc}).") from exc
        if instance is None:
            counts.created += 1
            created_ids.append(key)
        else:
            counts.updated += 1
    if section.explicit_auto_id and created_ids:
        advance_id_sequence(model=section.model, past_id=max(created_ids))
    return counts


def _row_key(section: _Section, row: Mapping[str, Any], where: str) -> Any:
    value = row.get(section.key)
    if value is None:
        raise ImportFailed(f"{where}: {section.key}: This field is required.")
    if section.key == "code":
        if not isinstance(value, str):
            raise ImportFailed(f'{where}: code: Must be a string, e.g. "USD".')
        return value.strip().upper()
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BIGINT:
        raise ImportFailed(f"{where}: id: Must be a positive integer.")
    return value


def _unchanged(instance: models.Model, data: Mapping[str, Any]) -> bool:
    """Whether saving `data` would change nothing (so the row is not written at all, and
    cached prices are not invalidated by a re-import)."""
    for name, value in data.items():
        model_field = instance._meta.get_field(name)
        if model_field.many_to_many:
            current = {obj.pk for obj in getattr(instance, name).all()}
            if current != {obj.pk for obj in value}:
                return False
        elif isinstance(model_field, models.ForeignKey):
            if getattr(instance, model_field.attname) != getattr(value, "pk", None):
                return False
        elif getattr(instance, name) != value:
            return False
    return True


def _messages(errors: Any) -> str:
    return " ".join(_flatten(errors, ""))


def _flatten(detail: Any, path: str) -> Iterator[str]:
    """`field: message` for every message of a nested DRF error structure."""
    if isinstance(detail, Mapping):
        for name, inner in detail.items():
            if name == api_settings.NON_FIELD_ERRORS_KEY:
                inner_path = path
            else:
                inner_path = f"{path}.{name}" if path else str(name)
            yield from _flatten(inner, inner_path)
    elif isinstance(detail, list):
        for position, inner in enumerate(detail):
            if isinstance(inner, str | ErrorDetail):
                yield from _flatten(inner, path)
            elif inner:  # a list of nested errors has {} for the valid items
                yield from _flatten(inner, f"{path}[{position}]")
    else:
        yield f"{path}: {detail}" if path else str(detail)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return "an object"
