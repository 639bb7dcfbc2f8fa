"""The shape of SolusIO's usage rows (`GET /usage`) — ASSUMED, see DESIGN §4.

No public source confirmed this shape, so everything that knows it is in this one module:
if real SolusIO differs, this file (and the simulator's generator) is the edit.

Assumed row::

    {"user": {"id", "billing_user_id"}, "server": {"id", "uuid", "name"},
     "plan": {"id", "name", "tokens_per_hour", "tokens_per_month",
              "ip_tokens_per_hour", "ip_tokens_per_month"},
     "item": "server" | "additional_ip", "hours": int,
     "started_at": ISO 8601, "ended_at": ISO 8601 | null, "tokens": int | null}

- `hours` counts every started hour of the item within the requested period (rule R1).
- `started_at`/`ended_at` bound the usage inside the period; `ended_at` is null while the
  item is still running and the period is not over yet.
- For `additional_ip` rows the applicable prices are the plan's `ip_tokens_per_*`
  (required on such rows); for `server` rows, `tokens_per_*`.
- `tokens` is what SolusIO itself charged, when it says; the bridge recomputes and compares.

Parsing is tolerant of extra fields and strict on missing or mistyped required ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from solusio import _parse as p
from solusio.errors import InvalidResponse


class UsageSchemaError(InvalidResponse):
    """A usage row does not have the assumed shape."""


class UsageItem(StrEnum):
    SERVER = "server"
    ADDITIONAL_IP = "additional_ip"


@dataclass(frozen=True, slots=True)
class UsageUser:
    id: int
    billing_user_id: int | None


@dataclass(frozen=True, slots=True)
class UsageServer:
    id: int
    uuid: str
    name: str


@dataclass(frozen=True, slots=True)
class UsagePlan:
    id: int
    name: str
    tokens_per_hour: int
    tokens_per_month: int
    ip_tokens_per_hour: int | None
    ip_tokens_per_month: int | None


@dataclass(frozen=True, slots=True)
class UsageRow:
    user: UsageUser
    server: UsageServer
    plan: UsagePlan
    item: UsageItem
    hours: int
    started_at: datetime
    ended_at: datetime | None
    tokens: int | None

    @property
    def tph(self) -> int:
        """Tokens per hour that apply to this item."""
        if self.item is UsageItem.ADDITIONAL_IP:
            assert self.plan.ip_tokens_per_hour is not None  # enforced by parse_usage_row
            return self.plan.ip_tokens_per_hour
        return self.plan.tokens_per_hour

    @property
    def tpm(self) -> int:
        """Tokens per month (the monthly cap or fixed price) that apply to this item."""
        if self.item is UsageItem.ADDITIONAL_IP:
            assert self.plan.ip_tokens_per_month is not None
            return self.plan.ip_tokens_per_month
        return self.plan.tokens_per_month


def parse_usage_row(value: Any, where: str = "usage") -> UsageRow:
    try:
        return _parse(value, where)
    except UsageSchemaError:
        raise
    except InvalidResponse as exc:
        raise UsageSchemaError(f"usage row does not have the assumed shape: {exc.message}") from exc


def _parse(value: Any, where: str) -> UsageRow:
    data = p.obj(value, where)
    user = p.obj(data.get("user"), f"{where}.user")
    server = p.obj(data.get("server"), f"{where}.server")
    plan = p.obj(data.get("plan"), f"{where}.plan")
    item_text = p.string(data, "item", where)
    try:
        item = UsageItem(item_text)
    except ValueError:
        # An item kind we cannot price must stop the invoice run, not be skipped.
        raise UsageSchemaError(f"{where}.item: unknown usage item {item_text!r}") from None
    hours = p.integer(data, "hours", where)
    if hours < 0:
        raise UsageSchemaError(f"{where}.hours: negative ({hours})")
    usage_plan = UsagePlan(
        id=p.integer(plan, "id", f"{where}.plan"),
        name=p.string(plan, "name", f"{where}.plan"),
        tokens_per_hour=p.integer(plan, "tokens_per_hour", f"{where}.plan"),
        tokens_per_month=p.integer(plan, "tokens_per_month", f"{where}.plan"),
        ip_tokens_per_hour=p.integer(plan, "ip_tokens_per_hour", f"{where}.plan", default=None),
        ip_tokens_per_month=p.integer(plan, "ip_tokens_per_month", f"{where}.plan", default=None),
    )
    if item is UsageItem.ADDITIONAL_IP and (
        usage_plan.ip_tokens_per_hour is None or usage_plan.ip_tokens_per_month is None
    ):
        raise UsageSchemaError(
            f"{where}.plan: an additional_ip row needs ip_tokens_per_hour and ip_tokens_per_month"
        )
    started_at = p.timestamp(data, "started_at", where)
    assert started_at is not None
    return UsageRow(
        user=UsageUser(
            id=p.integer(user, "id", f"{where}.user"),
            billing_user_id=p.integer(user, "billing_user_id", f"{where}.user", nullable=True),
        ),
        server=UsageServer(
            id=p.integer(server, "id", f"{where}.server"),
            uuid=p.string(server, "uuid", f"{where}.server"),
            name=p.string(server, "name", f"{where}.server"),
        ),
        plan=usage_plan,
        item=item,
        hours=hours,
        started_at=started_at,
        ended_at=p.timestamp(data, "ended_at", where, nullable=True),
        tokens=p.integer(data, "tokens", where, nullable=True),
    )
