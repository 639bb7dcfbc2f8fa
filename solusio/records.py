"""Plain typed records for SolusIO objects, and their parsers.

The client returns these, never raw dicts, so the rest of the bridge does not depend on the
wire format. Parsers are strict on the fields the bridge uses and ignore everything else;
their field readers come from the SDK's schemas (`solusio.schemas`), so they type each field
as the official SDK does. The usage rows, whose shape is assumed rather than verified, live
in `usage_schema`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from solusio import _parse as p
from solusio import schemas as s


class UserStatus(StrEnum):
    ACTIVE = "active"
    LOCKED = "locked"
    SUSPENDED = "suspended"


_user_id = s.reader(s.USER, "id")
_user_email = s.reader(s.USER, "email")
_user_status = s.reader(s.USER, "status")
_user_billing_id = s.reader(s.USER, "billing_user_id")
_user_created = s.reader(s.USER, "created_at", default=None)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    status: str
    billing_user_id: int | None
    limit_group_id: int | None = None
    created_at: datetime | None = None

    @classmethod
    def parse(cls, value: Any, where: str = "user") -> User:
        data = p.obj(value, where)
        # Not in the SDK's User: SolusIO's answers name the group, the bridge writes its id.
        limit_group_id = p.integer(data, "limit_group_id", where, default=None)
        group = data.get("limit_group")
        if isinstance(group, dict):
            limit_group_id = p.integer(group, "id", f"{where}.limit_group")
        return cls(
            id=_user_id(data, where),
            email=_user_email(data, where),
            status=_user_status(data, where),
            billing_user_id=_user_billing_id(data, where),
            limit_group_id=limit_group_id,
            created_at=_user_created(data, where),
        )


_PLAN_FIELDS = [
    (name, s.reader(s.PLAN, name, **({} if required else {"default": None})))
    for name, required in (
        ("id", True),
        ("name", True),
        ("tokens_per_hour", True),
        ("tokens_per_month", True),
        ("ip_tokens_per_hour", False),
        ("ip_tokens_per_month", False),
        ("backup_price", False),
        ("is_backup_available", False),
        ("is_visible", False),
    )
]


@dataclass(frozen=True, slots=True)
class Plan:
    id: int
    name: str
    tokens_per_hour: int
    tokens_per_month: int
    # None when SolusIO does not report IP prices for the plan (older versions).
    ip_tokens_per_hour: int | None = None
    ip_tokens_per_month: int | None = None
    # Paid backups: a percentage of the server's price; None when SolusIO does not say.
    backup_price: Decimal | None = None
    is_backup_available: bool | None = None
    is_visible: bool | None = None
    # The whole answer: a price change sends it back whole (`update_plan_prices`).
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, value: Any, where: str = "plan") -> Plan:
        data = p.obj(value, where)
        return cls(**{name: read(data, where) for name, read in _PLAN_FIELDS}, raw=dict(data))


_limit = s.reader(s.LIMIT, "limit")
_limit_enabled = s.reader(s.LIMIT, "is_enabled")
_group_id = s.reader(s.LIMIT_GROUP, "id")
_group_name = s.reader(s.LIMIT_GROUP, "name")


@dataclass(frozen=True, slots=True)
class Limit:
    limit: int
    is_enabled: bool

    @classmethod
    def parse(cls, value: Any, where: str) -> Limit:
        data = p.obj(value, where)
        return cls(limit=_limit(data, where), is_enabled=_limit_enabled(data, where))


@dataclass(frozen=True, slots=True)
class LimitGroup:
    id: int
    name: str
    vms: Limit
    running_vms: Limit
    additional_ips: Limit

    @classmethod
    def parse(cls, value: Any, where: str = "limit_group") -> LimitGroup:
        data = p.obj(value, where)
        return cls(
            id=_group_id(data, where),
            name=_group_name(data, where),
            vms=Limit.parse(data.get("vms"), f"{where}.vms"),
            running_vms=Limit.parse(data.get("running_vms"), f"{where}.running_vms"),
            additional_ips=Limit.parse(data.get("additional_ips"), f"{where}.additional_ips"),
        )


_SETTINGS = s.SETTINGS["properties"]
_BILLING = _SETTINGS["billing_integration"]
_WHMCS = _BILLING["properties"]["drivers"]["properties"]["whmcs"]
_allow_registration = s.reader(_SETTINGS["features"], "allow_registration")
# Tolerant where the bridge writes these itself (a fresh SolusIO may send null or nothing).
_billing_type = s.reader(_BILLING, "type", default=None)
_whmcs_url = s.reader(_WHMCS, "url", default="")
_whmcs_token = s.reader(_WHMCS, "token", default="")


@dataclass(frozen=True, slots=True)
class Settings:
    """The parts of SolusIO's settings the integration guide touches (Steps 4 and 7)."""

    allow_registration: bool
    billing_integration_type: str
    billing_url: str
    # The shared secret SolusIO sends to GetTokenPricing: never in a repr or a log line.
    billing_token: str = field(repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, value: Any, where: str = "settings") -> Settings:
        data = p.obj(value, where)
        features = p.obj(data.get("features"), f"{where}.features")
        billing = p.obj(data.get("billing_integration"), f"{where}.billing_integration")
        drivers = p.obj(billing.get("drivers", {}), f"{where}.billing_integration.drivers")
        whmcs = p.obj(drivers.get("whmcs", {}), f"{where}.billing_integration.drivers.whmcs")
        return cls(
            allow_registration=_allow_registration(features, f"{where}.features"),
            billing_integration_type=_billing_type(billing, f"{where}.billing_integration") or "",
            billing_url=_whmcs_url(whmcs, f"{where}.whmcs") or "",
            billing_token=_whmcs_token(whmcs, f"{where}.whmcs") or "",
            raw=dict(data),
        )

    def driver(self, key: str) -> tuple[str, str] | None:
        """(url, token) of billing driver `key` as SolusIO has it; None when it has no
        such driver. Read leniently: the bridge writes these itself, and reports what it
        finds rather than failing on it."""
        billing = self.raw.get("billing_integration")
        drivers = billing.get("drivers") if isinstance(billing, dict) else None
        found = drivers.get(key) if isinstance(drivers, dict) else None
        if not isinstance(found, dict):
            return None
        url, token = found.get("url"), found.get("token")
        return (url if isinstance(url, str) else "", token if isinstance(token, str) else "")


_server_id = s.reader(s.SERVER, "id")
_server_uuid = s.reader(s.SERVER, "uuid")
_server_name = s.reader(s.SERVER, "name")
_server_status = s.reader(s.SERVER, "status")
_server_created = s.reader(s.SERVER, "created_at", default=None)
_server_suspended = s.reader(s.SERVER, "is_suspended", default=None)
_backups_enabled = s.reader(s.SERVER_BACKUP_SETTINGS, "enabled")
_ip = s.reader(s.IP_ADDRESS, "ip")
_ipv4 = s.reader(s.IP_ADDRESSES["properties"]["ipv4"]["items"], "ip")
_is_primary = s.reader(s.IP_ADDRESSES["properties"]["ipv4"]["items"], "is_primary", default=None)


def _addresses(value: Any, where: str) -> tuple[str, ...]:
    """The addresses of a server's IP list, the primary one first when the list says."""
    items = [p.obj(item, f"{where}[{i}]") for i, item in enumerate(p.array(value, where))]
    read = _ipv4 if where.endswith("ipv4") else _ip
    primary = [_is_primary(item, f"{where}[{i}]") is True for i, item in enumerate(items)]
    ordered = sorted(range(len(items)), key=lambda i: not primary[i])
    return tuple(read(items[i], f"{where}[{i}]") for i in ordered)


_plan_id = s.reader(s.PLAN, "id")


@dataclass(frozen=True, slots=True)
class Server:
    id: int
    uuid: str
    name: str
    status: str
    user_id: int | None
    plan_id: int | None
    created_at: datetime | None = None
    # None: the answer did not say (an older SolusIO); observed billing must not guess.
    backups_enabled: bool | None = None
    ips: tuple[str, ...] | None = None  # the primary address first
    is_suspended: bool | None = None

    @classmethod
    def parse(cls, value: Any, where: str = "server") -> Server:
        data = p.obj(value, where)
        user = data.get("user")
        plan = data.get("plan")
        backups = data.get("backup_settings")
        if backups is not None:
            inner = f"{where}.backup_settings"
            backups = _backups_enabled(p.obj(backups, inner), inner)
        # The SDK reads `ips`; DESIGN §4 saw `ip_addresses.ipv4`: either will do, by family
        # first where both are sent.
        ips: Any = None
        by_family = data.get("ip_addresses")
        if isinstance(by_family, dict) and "ipv4" in by_family:
            ips = _addresses(by_family["ipv4"], f"{where}.ip_addresses.ipv4")
        elif data.get("ips") is not None:
            ips = _addresses(data["ips"], f"{where}.ips")
        return cls(
            id=_server_id(data, where),
            uuid=_server_uuid(data, where),
            name=_server_name(data, where),
            status=_server_status(data, where),
            user_id=_user_id(user, f"{where}.user") if isinstance(user, dict) else None,
            plan_id=_plan_id(plan, f"{where}.plan") if isinstance(plan, dict) else None,
            created_at=_server_created(data, where),
            backups_enabled=backups,
            ips=ips,
            is_suspended=_server_suspended(data, where),
        )


@dataclass(frozen=True, slots=True)
class LinkResult:
    """What `create_or_link_user` did: made a user, found one, and/or re-set its link."""

    user: User
    created: bool
    relinked: bool
