"""The shape of SolusIO's usage rows (`GET /usage`) — ASSUMED, see DESIGN §4.

No public source confirmed this shape, so everything that knows it is in this one module:
if real SolusIO differs, this file (and the simulator's generator) is the edit.

Assumed row::

    {"user": {"id", "billing_user_id"}, "server": {"id", "uuid", "name"},
     "plan": {"id", "name", "tokens_per_hour", "tokens_per_month",
              "ip_tokens_per_hour", "ip_tokens_per_month"},
     "item": "server" | "additional_ip" | "backup", "hours": int,
     "started_at": ISO 8601, "ended_at": ISO 8601 | null, "tokens": int | null}

- `hours` counts every started hour of the item within the requested period (rule R1).
  Tolerated: absent or null (the caller computes it from `started_at`/`ended_at` under
  R1, see `UsageRow.hours`), a number in a string, a fraction (every started hour counts).
- Ids (user, billing user, server, plan) may be numbers in strings; `tokens` may be absent.
- An `item` kind the bridge does not know is kept as SolusIO wrote it (`UsageRow.known` is
  false): stored and shown to staff, and it holds its customer's invoice, never a crash.
- A `backup` row covers the hours a server had paid backups on, with that server's plan,
  whose `backup_price` (a percentage, required on such rows) prices it by rule R7.
- `started_at`/`ended_at` bound the usage inside the period; `ended_at` is null while the
  item is still running and the period is not over yet.
- For `additional_ip` rows the applicable prices are the plan's `ip_tokens_per_*`
  (required on such rows); for `server` rows, `tokens_per_*`.
- `tokens` is what SolusIO itself charged, when it says; the bridge recomputes and compares.

Parsing is tolerant of extra fields and strict on missing or mistyped required ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from solusio import _parse as p
from solusio.errors import InvalidResponse, SolusIOError


class UsageSchemaError(InvalidResponse):
    """A usage row does not have the assumed shape."""


class UsageEndpointUnusable(SolusIOError):
    """SolusIO's `/usage` is not where, or not what, the settings say: the close cannot
    read usage from it (a fallback to observed usage catches this type)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"usage endpoint {url} is unusable ({reason}); check SOLUSIO_USAGE_PATH, "
            "SOLUSIO_USAGE_FILTER_FROM and SOLUSIO_USAGE_FILTER_TO, or set "
            "USAGE_SOURCE=observed to bill from observed /servers (USAGE_SOURCE=both falls "
            "back to it)"
        )

    def __str__(self) -> str:
        return self.message


class UsageItem(StrEnum):
    SERVER = "server"
    ADDITIONAL_IP = "additional_ip"
    BACKUP = "backup"


KNOWN_ITEMS = frozenset(UsageItem)
MAX_ITEM_LENGTH = 64  # the longest unknown kind that is stored as written


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
    backup_price: Decimal | None = None  # percent of the runtime charge (R7)


@dataclass(frozen=True, slots=True)
class UsageRow:
    user: UsageUser
    server: UsageServer
    plan: UsagePlan
    item: str  # a UsageItem value, or an unknown kind exactly as SolusIO wrote it
    hours: int | None  # None: SolusIO did not say; see `hours_within`
    started_at: datetime
    ended_at: datetime | None
    tokens: int | None

    @property
    def known(self) -> bool:
        return self.item in KNOWN_ITEMS

    def hours_within(self, start: datetime, end: datetime) -> int:
        """The row's hours, or when SolusIO left them out, every started hour (R1) of
        [started_at, ended_at) within [start, end); a null `ended_at` runs to `end`."""
        if self.hours is not None:
            return self.hours
        begin = max(self.started_at, start)
        stop = min(self.ended_at or end, end)
        return math.ceil((stop - begin).total_seconds() / 3600) if stop > begin else 0

    @property
    def backup_price(self) -> Decimal | None:
        """The percentage that prices a backup row (R7); None on other rows."""
        return self.plan.backup_price if self.item == UsageItem.BACKUP else None

    @property
    def tph(self) -> int:
        """Tokens per hour that apply to this item."""
        if self.item == UsageItem.ADDITIONAL_IP:
            assert self.plan.ip_tokens_per_hour is not None  # enforced by parse_usage_row
            return self.plan.ip_tokens_per_hour
        return self.plan.tokens_per_hour

    @property
    def tpm(self) -> int:
        """Tokens per month (the monthly cap or fixed price) that apply to this item."""
        if self.item == UsageItem.ADDITIONAL_IP:
            assert self.plan.ip_tokens_per_month is not None
            return self.plan.ip_tokens_per_month
        return self.plan.tokens_per_month


def parse_usage_row(value: Any, where: str = "usage", *, url: str = "") -> UsageRow:
    """One row; a row that breaks the shape raises UsageSchemaError, or with `url` (the
    endpoint it came from) UsageEndpointUnusable, which stops a close in one line."""
    plain = _plain(value)
    if plain is not None:
        return plain
    try:
        return _parse(value, where)
    except InvalidResponse as exc:
        error = (
            exc
            if isinstance(exc, UsageSchemaError)
            else UsageSchemaError(f"usage row does not have the assumed shape: {exc.message}")
        )
        if url:
            raise UsageEndpointUnusable(url, error.message) from exc
        raise error from exc


def _loose_integer(
    data: Any, key: str, where: str, *, nullable: bool = False, default: Any = p._MISSING
) -> Any:
    """An integer, also one written as a string ("42"): SolusIO's ids and counts are
    integers, but a serializer may quote them."""
    value = data.get(key)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return p.integer(data, key, where, nullable=nullable, default=default)


def _quantity(data: Any, key: str, where: str) -> Decimal | None:
    """A non-negative number, also one in a string; None when absent or null."""
    value = data.get(key)
    if value is None:
        return None
    number = None
    if not isinstance(value, bool) and isinstance(value, int | float | str):
        try:
            # Through str: a JSON 12.5 read as a float is the Decimal 12.5, not its binary twin.
            number = Decimal(str(value).strip())
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite() or number < 0:
        raise UsageSchemaError(f"{where}.{key}: expected a number of 0 or more, got {value!r}")
    return number


def _hours(data: Any, where: str) -> int | None:
    hours = _quantity(data, "hours", where)
    # R1: every started hour counts, so 5.5 reported hours bill as 6.
    return None if hours is None else int(hours.to_integral_value(rounding=ROUND_CEILING))


def _plain(value: Any) -> UsageRow | None:
    """The row, when every field is written the plain way (numbers as JSON numbers, no
    quoted ids, nothing missing); None for anything else, which `_parse` then reads
    (tolerating what it tolerates, naming what it refuses). Both give the same row for
    every plain row (a property test): this one only skips building the paths of error
    messages for every field, most of a page's parsing time."""
    try:
        user, server, plan = value["user"], value["server"], value["plan"]
        item, started, ended = value["item"], value["started_at"], value["ended_at"]
        uid, billing_id = user["id"], user["billing_user_id"]
        sid, uuid, name = server["id"], server["uuid"], server["name"]
        pid, plan_name = plan["id"], plan["name"]
        tph, tpm = plan["tokens_per_hour"], plan["tokens_per_month"]
    except (KeyError, TypeError):
        return None
    ip_tph, ip_tpm = plan.get("ip_tokens_per_hour"), plan.get("ip_tokens_per_month")
    backup_price, hours, tokens = plan.get("backup_price"), value.get("hours"), value.get("tokens")
    if not (
        type(item) is str
        and 0 < len(item) <= MAX_ITEM_LENGTH
        and type(started) is str
        and (ended is None or type(ended) is str)
        and type(uid) is int
        and (billing_id is None or type(billing_id) is int)
        and type(sid) is int
        and type(uuid) is str
        and type(name) is str
        and type(pid) is int
        and type(plan_name) is str
        and type(tph) is int
        and type(tpm) is int
        and (ip_tph is None or type(ip_tph) is int)
        and (ip_tpm is None or type(ip_tpm) is int)
        and (hours is None or (type(hours) is int and hours >= 0))
        and (tokens is None or type(tokens) is int)
        and (backup_price is None or type(backup_price) in (int, float))
    ):
        return None
    if item == UsageItem.ADDITIONAL_IP and (ip_tph is None or ip_tpm is None):
        return None
    price = None
    if backup_price is not None:
        price = Decimal(str(backup_price))  # through str, as `_quantity` reads it
        if not price.is_finite() or price < 0:
            return None
    if item == UsageItem.BACKUP and price is None:
        return None
    try:
        started_at = p.parse_datetime(started, "")
        ended_at = None if ended is None else p.parse_datetime(ended, "")
    except InvalidResponse:
        return None
    return UsageRow(
        user=UsageUser(id=uid, billing_user_id=billing_id),
        server=UsageServer(id=sid, uuid=uuid, name=name),
        plan=UsagePlan(pid, plan_name, tph, tpm, ip_tph, ip_tpm, price),
        item=item,
        hours=hours,
        started_at=started_at,
        ended_at=ended_at,
        tokens=tokens,
    )


def _parse(value: Any, where: str) -> UsageRow:
    data = p.obj(value, where)
    user = p.obj(data.get("user"), f"{where}.user")
    server = p.obj(data.get("server"), f"{where}.server")
    plan = p.obj(data.get("plan"), f"{where}.plan")
    # An unknown kind is kept as written: the build holds its customer's invoice for staff.
    item = p.string(data, "item", where)
    if not 0 < len(item) <= MAX_ITEM_LENGTH:
        raise UsageSchemaError(f"{where}.item: not a usage item kind: {item[:80]!r}")
    usage_plan = UsagePlan(
        id=_loose_integer(plan, "id", f"{where}.plan"),
        name=p.string(plan, "name", f"{where}.plan"),
        tokens_per_hour=p.integer(plan, "tokens_per_hour", f"{where}.plan"),
        tokens_per_month=p.integer(plan, "tokens_per_month", f"{where}.plan"),
        ip_tokens_per_hour=p.integer(plan, "ip_tokens_per_hour", f"{where}.plan", default=None),
        ip_tokens_per_month=p.integer(plan, "ip_tokens_per_month", f"{where}.plan", default=None),
        backup_price=_quantity(plan, "backup_price", f"{where}.plan"),
    )
    if item == UsageItem.ADDITIONAL_IP and (
        usage_plan.ip_tokens_per_hour is None or usage_plan.ip_tokens_per_month is None
    ):
        raise UsageSchemaError(
            f"{where}.plan: an additional_ip row needs ip_tokens_per_hour and ip_tokens_per_month"
        )
    if item == UsageItem.BACKUP and usage_plan.backup_price is None:
        raise UsageSchemaError(f"{where}.plan: a backup row needs the plan's backup_price")
    started_at = p.timestamp(data, "started_at", where)
    assert started_at is not None
    return UsageRow(
        user=UsageUser(
            id=_loose_integer(user, "id", f"{where}.user"),
            billing_user_id=_loose_integer(user, "billing_user_id", f"{where}.user", nullable=True),
        ),
        server=UsageServer(
            id=_loose_integer(server, "id", f"{where}.server"),
            uuid=p.string(server, "uuid", f"{where}.server"),
            name=p.string(server, "name", f"{where}.server"),
        ),
        plan=usage_plan,
        item=item,
        hours=_hours(data, where),
        started_at=started_at,
        ended_at=p.timestamp(data, "ended_at", where, nullable=True),
        tokens=_loose_integer(data, "tokens", where, default=None),
    )
