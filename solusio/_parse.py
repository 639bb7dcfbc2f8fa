"""Small, strict readers for JSON objects from SolusIO.

Each reader names the path of a bad field ("usage[3].plan.tokens_per_hour: missing"), so a
change on SolusIO's side shows up as one clear error instead of a KeyError deep in billing.
Extra fields are always ignored: SolusIO adds fields between versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from solusio.errors import InvalidResponse

_MISSING: Any = object()


def obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidResponse(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _get(data: Mapping[str, Any], key: str, where: str, default: Any) -> Any:
    if key in data:
        return data[key]
    if default is _MISSING:
        raise InvalidResponse(f"{where}.{key}: missing")
    return default


def integer(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    nullable: bool = False,
    default: Any = _MISSING,
) -> Any:
    value = _get(data, key, where, default)
    if value is None and (nullable or default is None):
        return None
    # JSON has one number type: the Go SDK reads token prices as float64, so 7.0 is 7.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidResponse(f"{where}.{key}: expected an integer, got {value!r}")
    return value


def string(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    nullable: bool = False,
    default: Any = _MISSING,
) -> Any:
    value = _get(data, key, where, default)
    if value is None and (nullable or default is None):
        return None
    if not isinstance(value, str):
        raise InvalidResponse(f"{where}.{key}: expected a string, got {value!r}")
    return value


def boolean(data: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING) -> Any:
    value = _get(data, key, where, default)
    if value is None and default is None:
        return None
    if not isinstance(value, bool):
        raise InvalidResponse(f"{where}.{key}: expected true or false, got {value!r}")
    return value


def parse_datetime(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidResponse(f"{where}: not an ISO 8601 date-time: {text!r}") from None
    # SolusIO (Laravel) writes UTC; a value without an offset is read as UTC, not local.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def timestamp(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    nullable: bool = False,
    default: Any = _MISSING,
) -> datetime | None:
    value = string(data, key, where, nullable=nullable, default=default)
    return None if value is None else parse_datetime(value, f"{where}.{key}")


def number(data: Mapping[str, Any], key: str, where: str, **options: Any) -> Any:
    """A JSON number (Go float64) as a Decimal, through its shortest repr, so 20.1 stays 20.1.
    Options as for `integer`: nullable, default."""
    value = _get(data, key, where, options.get("default", _MISSING))
    if value is None and (options.get("nullable") or options.get("default", 0) is None):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidResponse(f"{where}.{key}: expected a number, got {value!r}")
    return Decimal(str(value))


def array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidResponse(f"{where}: expected a list, got {type(value).__name__}")
    return value
