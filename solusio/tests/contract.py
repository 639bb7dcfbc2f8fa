"""DESIGN §4 as tables: the fields each SolusIO object carries, with their JSON types.

Written once, checked against the simulator's output and fed to the client's parsers, so
neither side can drift into a private dialect. A type tuple lists alternatives (None =
null allowed); OneOf lists the allowed values (the first is the example); a dict is a nested
object.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class OneOf:
    def __init__(self, *values: str) -> None:
        self.values = values


ISO = "iso-8601 string"  # a string that parses as a date-time
LIMIT = {"limit": int, "is_enabled": bool}

USER = {
    "id": int,
    "email": str,
    "status": OneOf("active", "locked", "suspended"),
    "billing_user_id": (int, None),
    # Written as limit_group_id / language_id, read back as objects with an id.
    "limit_group": ({"id": int, "name": str}, None),
    "language": ({"id": int}, None),
    "roles": list,
    "created_at": ISO,
}
PLAN = {
    "id": int,
    "name": str,
    "tokens_per_hour": int,
    "tokens_per_month": int,
    "ip_tokens_per_hour": int,
    "ip_tokens_per_month": int,
}
LIMIT_GROUP = {"id": int, "name": str, "vms": LIMIT, "running_vms": LIMIT, "additional_ips": LIMIT}
SETTINGS = {
    "features": {"allow_registration": bool},
    "billing_integration": {"type": str, "drivers": {"whmcs": {"url": str, "token": str}}},
}
SERVER = {
    "id": int,
    "uuid": str,
    "name": str,
    "status": OneOf("started", "stopped", "processing", "paused", "unavailable", "not exists"),
    "user": {"id": int},
    "plan": {"id": int},
}
USAGE_ROW = {
    "user": {"id": int, "billing_user_id": (int, None)},
    "server": {"id": int, "uuid": str, "name": str},
    "plan": {"id": int, "name": str, "tokens_per_hour": int, "tokens_per_month": int},
    "item": OneOf("server", "additional_ip", "backup"),
    "hours": int,
    "started_at": ISO,
    "ended_at": (ISO, None),
    "tokens": (int, None),
}
# Extra fields an additional_ip usage row needs (assumed, see usage_schema).
USAGE_IP_PLAN = {"ip_tokens_per_hour": int, "ip_tokens_per_month": int}
# ... and a backup row, its plan's backup price (a percentage, rule R7).
USAGE_BACKUP_PLAN = {"backup_price": (int, float)}
# Fields of a usage row the parser tolerates the absence of (usage_schema).
USAGE_ROW_OPTIONAL = frozenset({"hours", "tokens"})
TOKEN = {"access_token": str}
PAGE = {
    "data": list,
    "links": {"first": str, "last": str, "prev": (str, None), "next": (str, None)},
    "meta": {"current_page": int, "last_page": int, "per_page": int, "total": int},
}
VALIDATION_ERROR = {"message": str, "errors": dict}


def problems(value: Any, spec: Any, where: str = "$") -> list[str]:
    """Every way `value` breaks `spec`; an empty list means it conforms."""
    if isinstance(spec, tuple):
        found = [problems(value, alternative, where) for alternative in spec]
        return [] if any(not f for f in found) else found[0]
    if spec is None:
        return [] if value is None else [f"{where}: expected null, got {value!r}"]
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {value!r}"]
        out = []
        for key, sub in spec.items():
            if key not in value:
                out.append(f"{where}.{key}: missing")
            else:
                out.extend(problems(value[key], sub, f"{where}.{key}"))
        return out
    if isinstance(spec, OneOf):
        return [] if value in spec.values else [f"{where}: {value!r} not one of {spec.values}"]
    if spec == ISO:
        try:
            datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return [f"{where}: not an ISO 8601 date-time: {value!r}"]
        return []
    if spec is int and (isinstance(value, bool) or not isinstance(value, int)):
        return [f"{where}: expected an integer, got {value!r}"]
    if not isinstance(value, spec):
        return [f"{where}: expected {spec.__name__}, got {value!r}"]
    return []


def example(spec: Any) -> Any:
    """The smallest object that conforms to `spec`: only the listed fields, no extras."""
    if isinstance(spec, tuple):
        return example(spec[0])
    if isinstance(spec, dict):
        return {key: example(sub) for key, sub in spec.items()}
    if isinstance(spec, OneOf):
        return spec.values[0]
    return {
        ISO: "2025-01-01T00:00:00Z",
        int: 1,
        str: "x",
        bool: True,
        list: [],
        dict: {},
    }[spec]
