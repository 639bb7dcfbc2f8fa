"""Plain typed records for SolusIO objects, and their parsers.

The client returns these, never raw dicts, so the rest of the bridge does not depend on the
wire format. Parsers are strict on the fields the bridge uses and ignore everything else.
The usage rows, whose shape is assumed rather than verified, live in `usage_schema`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from solusio import _parse as p


class UserStatus(StrEnum):
    ACTIVE = "active"
    LOCKED = "locked"
    SUSPENDED = "suspended"


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
        limit_group_id = p.integer(data, "limit_group_id", where, default=None)
        group = data.get("limit_group")
        if isinstance(group, dict):
            limit_group_id = p.integer(group, "id", f"{where}.limit_group")
        return cls(
            id=p.integer(data, "id", where),
            email=p.string(data, "email", where),
            status=p.string(data, "status", where),
            billing_user_id=p.integer(data, "billing_user_id", where, nullable=True),
            limit_group_id=limit_group_id,
            created_at=p.timestamp(data, "created_at", where, default=None),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    id: int
    name: str
    tokens_per_hour: int
    tokens_per_month: int
    # None when SolusIO does not report IP prices for the plan (older versions).
    ip_tokens_per_hour: int | None = None
    ip_tokens_per_month: int | None = None

    @classmethod
    def parse(cls, value: Any, where: str = "plan") -> Plan:
        data = p.obj(value, where)
        return cls(
            id=p.integer(data, "id", where),
            name=p.string(data, "name", where),
            tokens_per_hour=p.integer(data, "tokens_per_hour", where),
            tokens_per_month=p.integer(data, "tokens_per_month", where),
            ip_tokens_per_hour=p.integer(data, "ip_tokens_per_hour", where, default=None),
            ip_tokens_per_month=p.integer(data, "ip_tokens_per_month", where, default=None),
        )


@dataclass(frozen=True, slots=True)
class Limit:
    limit: int
    is_enabled: bool

    @classmethod
    def parse(cls, value: Any, where: str) -> Limit:
        data = p.obj(value, where)
        return cls(
            limit=p.integer(data, "limit", where),
            is_enabled=p.boolean(data, "is_enabled", where),
        )


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
            id=p.integer(data, "id", where),
            name=p.string(data, "name", where),
            vms=Limit.parse(data.get("vms"), f"{where}.vms"),
            running_vms=Limit.parse(data.get("running_vms"), f"{where}.running_vms"),
            additional_ips=Limit.parse(data.get("additional_ips"), f"{where}.additional_ips"),
        )


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
            allow_registration=p.boolean(features, "allow_registration", f"{where}.features"),
            billing_integration_type=p.string(
                billing, "type", f"{where}.billing_integration", nullable=True
            )
            or "",
            billing_url=p.string(whmcs, "url", f"{where}.whmcs", default="") or "",
            billing_token=p.string(whmcs, "token", f"{where}.whmcs", default="") or "",
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Server:
    id: int
    uuid: str
    name: str
    status: str
    user_id: int | None
    plan_id: int | None
    created_at: datetime | None = None

    @classmethod
    def parse(cls, value: Any, where: str = "server") -> Server:
        data = p.obj(value, where)
        user = data.get("user")
        plan = data.get("plan")
        return cls(
            id=p.integer(data, "id", where),
            uuid=p.string(data, "uuid", where),
            name=p.string(data, "name", where),
            status=p.string(data, "status", where),
            user_id=p.integer(user, "id", f"{where}.user") if isinstance(user, dict) else None,
            plan_id=p.integer(plan, "id", f"{where}.plan") if isinstance(plan, dict) else None,
            created_at=p.timestamp(data, "created_at", where, default=None),
        )


@dataclass(frozen=True, slots=True)
class LinkResult:
    """What `create_or_link_user` did: made a user, found one, and/or re-set its link."""

    user: User
    created: bool
    relinked: bool
