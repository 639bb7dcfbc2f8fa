"""Billing rules (DESIGN §5 and §6): hours → tokens → money. Pure: no ORM, no HTTP.

Tokens are integers; money is Decimal. The cycle close feeds this module plain records and
stores what it returns, so every rule here is tested directly (and by property tests).

Resized servers. SolusIO reports a server that changed plan mid-period as one usage item
per plan segment, and each segment is billed on its own: R1–R5 with that segment's plan,
capped at that plan's tokens per month (R6: the cap is per usage item per period, never
across items). Worked example, plans 7/5000 and 14/10000: 400 h on the first → 2,800
tokens (hourly), then 344 h on the second → 4,816 tokens (hourly): 7,616 tokens. Had the
server run 730 h on the first plan before the resize, that segment would cost 5,000
(monthly cap) and the next segment would be billed from its first hour.

Paid backups (R7) are a `backup` usage item per server segment with backups on: a line of
round_half_up(that segment's runtime charge under R2–R5 × backup_price / 100) tokens. A
backup price of 0 % still gives its line, at 0 tokens (as R5's free line), so staff see the
backups were on. Usage of a kind these rules do not know is not priced: the draft keeps it
aside (`InvoiceDraft.unknown`) and says why it must wait for staff (`hold_reason`).
"""

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.utils.translation import gettext_lazy

from bridge.money import round_money  # pure too: no ORM, no HTTP

_ONE_HOUR = timedelta(hours=1)
_EXACT = 400  # Decimal precision at which products of stored values are exact


class Rule(StrEnum):
    HOURLY = "hourly"  # hours × tph, under the cap or with no cap (R2, R3)
    MONTHLY_CAP = "monthly_cap"  # hours × tph exceeded tpm, so tpm (R2)
    FIXED_MONTHLY = "fixed_monthly"  # tph = 0: the fixed monthly price (R4)
    FREE = "free"  # both prices 0 (R5)
    BACKUPS = "backups"  # paid backups: a percentage of the runtime charge (R7)

    @property
    def label(self) -> str:
        """What customers read, in the active language: the stored code ("monthly_cap") is
        never shown to them."""
        return str(_RULE_LABELS[self])

    @classmethod
    def label_of(cls, code: str) -> str:
        """The label of a stored line's rule; a code this version does not know (a newer
        rule read by an older process) reads as words rather than as a code."""
        try:
            return cls(code).label
        except ValueError:
            return code.replace("_", " ").capitalize()


_RULE_LABELS = {
    Rule.HOURLY: gettext_lazy("Hourly"),
    Rule.MONTHLY_CAP: gettext_lazy("Monthly cap"),
    Rule.FIXED_MONTHLY: gettext_lazy("Fixed monthly"),
    Rule.FREE: gettext_lazy("Free"),
    Rule.BACKUPS: gettext_lazy("Backups"),
}


def started_hours(started_at: datetime, ended_at: datetime) -> int:
    """R1: every started hour counts. 5 min → 1; 60 min → 1; 60 min 1 s → 2; 0 s → 0."""
    if started_at.tzinfo is None or ended_at.tzinfo is None:
        raise ValueError("usage times must be timezone-aware")
    if ended_at <= started_at:
        return 0
    return math.ceil((ended_at - started_at) / _ONE_HOUR)


# Charge, UsageInput and LineDraft are NamedTuples rather than frozen dataclasses: a close
# makes one of each per line, and a frozen dataclass's __init__ costs several times a tuple's.
class Charge(NamedTuple):
    hours: int
    tokens_per_hour: int
    tokens_per_month: int
    rule: Rule
    tokens: int


def charge(hours: int, tokens_per_hour: int, tokens_per_month: int) -> Charge:
    """Tokens for one usage item in one period (R2–R5)."""
    if hours < 0 or tokens_per_hour < 0 or tokens_per_month < 0:
        raise ValueError("hours and prices must not be negative")

    # Charge(...) written out in each branch: a close makes one per line (no closure).
    if tokens_per_hour == 0 and tokens_per_month == 0:
        return Charge(hours, tokens_per_hour, tokens_per_month, Rule.FREE, 0)
    if tokens_per_hour == 0:
        tokens = tokens_per_month if hours > 0 else 0
        return Charge(hours, tokens_per_hour, tokens_per_month, Rule.FIXED_MONTHLY, tokens)
    hourly = hours * tokens_per_hour
    if tokens_per_month > 0 and hourly > tokens_per_month:
        return Charge(hours, tokens_per_hour, tokens_per_month, Rule.MONTHLY_CAP, tokens_per_month)
    return Charge(hours, tokens_per_hour, tokens_per_month, Rule.HOURLY, hourly)


# Usage item kinds the rules price; any other kind holds its customer's invoice.
SERVER, ADDITIONAL_IP, BACKUP = "server", "additional_ip", "backup"
PRICED_ITEMS = frozenset({SERVER, ADDITIONAL_IP, BACKUP})


def backup_charge(
    hours: int, tokens_per_hour: int, tokens_per_month: int, backup_price: Decimal
) -> Charge:
    """R7: paid backups of one server segment, `backup_price` percent of the segment's
    runtime charge (R2–R5 at the server plan's prices), rounded half-up to whole tokens."""
    if backup_price < 0:
        raise ValueError("the backup price must not be negative")
    runtime = charge(hours, tokens_per_hour, tokens_per_month)
    with localcontext() as ctx:
        ctx.prec = _EXACT
        tokens = (runtime.tokens * backup_price / 100).quantize(Decimal(1), ROUND_HALF_UP)
    return Charge(hours, tokens_per_hour, tokens_per_month, Rule.BACKUPS, int(tokens))


def item_charge(usage: "UsageInput") -> Charge:
    """The charge of one priced usage item: R7 for backups, R2–R5 otherwise."""
    if usage.item == BACKUP:
        if usage.backup_price is None:
            raise ValueError(f"backup usage of server {usage.server_id} has no backup price")
        return backup_charge(
            usage.hours, usage.tokens_per_hour, usage.tokens_per_month, usage.backup_price
        )
    return charge(usage.hours, usage.tokens_per_hour, usage.tokens_per_month)


# --- Money (DESIGN §6): each amount rounded half-up to the currency's decimals --------------


@dataclass(frozen=True)
class TaxLine:
    label: str
    rate: Decimal  # percent
    base: Decimal  # the amount the rate applied to
    amount: Decimal


@dataclass(frozen=True)
class Totals:
    line_amounts: tuple[Decimal, ...]
    subtotal: Decimal
    taxes: tuple[TaxLine, ...]
    total: Decimal


def line_amount(
    tokens: int, token_price: Decimal, multipliers: Sequence[Decimal], decimals: int
) -> Decimal:
    """round_half_up(tokens × token price × Π multipliers): discounts before taxes."""
    return _line_amount(tokens, token_price, tuple(multipliers), decimals)


# A close prices hundreds of thousands of lines at a handful of prices, and the same token
# counts recur (the caps, whole months of the common plans): remembered, not recomputed.
@functools.lru_cache(maxsize=1 << 16)
def _line_amount(
    tokens: int, token_price: Decimal, multipliers: tuple[Decimal, ...], decimals: int
) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _EXACT
        amount = Decimal(tokens) * token_price
        for multiplier in multipliers:
            amount *= multiplier
        return round_money(amount, decimals)


_AMOUNTS_KEPT = 1 << 16  # line amounts remembered per price


@functools.lru_cache(maxsize=1 << 8)
def _amounts_at(
    token_price: Decimal, multipliers: tuple[Decimal, ...], decimals: int
) -> dict[int, Decimal]:
    """Line amounts by tokens, at one price (filled in by `invoice_totals`)."""
    return {}


def invoice_totals(
    line_tokens: Sequence[int],
    token_price: Decimal,
    multipliers: Sequence[Decimal],
    taxes: Sequence[tuple[str, Decimal]],
    compound: bool,
    decimals: int,
) -> Totals:
    """Lines, subtotal, taxes in order (simple on the subtotal, compound on the subtotal plus
    the taxes before), each rounded half-up; total = subtotal + taxes."""
    factors = tuple(multipliers)
    # The amounts already made at this price (looked up by the tokens alone: hashing the
    # price and factors per line was most of pricing a line).
    known = _amounts_at(token_price, factors, decimals)
    if len(known) > _AMOUNTS_KEPT:
        known.clear()
    amounts = tuple(
        known[t]
        if t in known
        else known.setdefault(t, _line_amount(t, token_price, factors, decimals))
        for t in line_tokens
    )
    # The amounts are rounded already: this only pads (a sum of none is 0.00).
    subtotal = round_money(sum(amounts, Decimal(0)), decimals)
    tax_lines: list[TaxLine] = []
    running = subtotal
    with localcontext() as ctx:
        ctx.prec = _EXACT
        for label, rate in taxes:
            base = running if compound else subtotal
            amount = round_money(base * rate / 100, decimals)
            tax_lines.append(TaxLine(label, rate, base, amount))
            running += amount
    total = subtotal + sum((t.amount for t in tax_lines), Decimal(0))
    return Totals(amounts, subtotal, tuple(tax_lines), total)


# --- Billing periods (DESIGN §6) --------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A calendar month in the billing time zone, half-open [start, end) in UTC."""

    month: date  # the first day of the month, as the billing zone reads it
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return f"{self.month:%Y-%m}"

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def period_of_month(year: int, month: int, zone: str) -> Period:
    """Midnight of the 1st to midnight of the next 1st, local time, as UTC instants.

    Local midnight never falls in a DST gap in the zones that matter, and zoneinfo resolves
    an ambiguous one with fold=0; either way the bounds are exact instants, so a month with
    a DST change is 743 or 745 hours long, as the wall clock says.
    """
    tz = ZoneInfo(zone)
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    start = datetime(first.year, first.month, 1, tzinfo=tz).astimezone(UTC)
    end = datetime(following.year, following.month, 1, tzinfo=tz).astimezone(UTC)
    return Period(first, start, end)


def parse_period(text: str, zone: str) -> Period:
    """ "2026-10" → that month in `zone`."""
    try:
        year_text, month_text = text.strip().split("-")
        year, month = int(year_text), int(month_text)
        if not 1 <= month <= 12 or not 2000 <= year <= 9999:
            raise ValueError
    except ValueError:
        raise ValueError(f"period must look like 2026-10, got {text!r}") from None
    return period_of_month(year, month, zone)


def period_containing(instant: datetime, zone: str) -> Period:
    local = instant.astimezone(ZoneInfo(zone))
    return period_of_month(local.year, local.month, zone)


def previous_period(instant: datetime, zone: str) -> Period:
    """The month before the one `instant` falls in: what the cycle close on the 1st bills."""
    current = period_containing(instant, zone)
    return period_containing(current.start - timedelta(microseconds=1), zone)


# --- Invoices: what should be billed (Kill Bill's "pure" half) ----------------------------


@dataclass(frozen=True)
class PricingSnapshot:
    """Everything an invoice's money depends on, frozen when it is built (DESIGN §6)."""

    currency: str
    token_price: Decimal
    decimals: int
    display_prefix: str
    display_suffix: str
    thousands_separator: str
    decimals_separator: str
    discounts: tuple[tuple[str, Decimal], ...]  # (name, multiplier), in the order applied
    taxes: tuple[tuple[str, Decimal], ...]  # (label, rate %), in the order applied
    compound: bool
    exempt: bool  # billing-exempt customers are never charged (DESIGN §3)

    def as_json(self) -> dict[str, Any]:
        """Decimals as strings, so a JSON column keeps them exactly."""
        return {
            "currency": {
                "code": self.currency,
                "token_price": str(self.token_price),
                "decimals": self.decimals,
                "display_prefix": self.display_prefix,
                "display_suffix": self.display_suffix,
                "thousands_separator": self.thousands_separator,
                "decimals_separator": self.decimals_separator,
            },
            "discounts": [{"name": n, "multiplier": str(m)} for n, m in self.discounts],
            "taxes": {
                "compound": self.compound,
                "rates": [{"label": label, "rate": str(r)} for label, r in self.taxes],
            },
            "billing_exempt": self.exempt,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "PricingSnapshot":
        cur = data["currency"]
        return cls(
            currency=cur["code"],
            token_price=Decimal(cur["token_price"]),
            decimals=int(cur["decimals"]),
            display_prefix=cur["display_prefix"],
            display_suffix=cur["display_suffix"],
            thousands_separator=cur["thousands_separator"],
            decimals_separator=cur["decimals_separator"],
            discounts=tuple((d["name"], Decimal(d["multiplier"])) for d in data["discounts"]),
            taxes=tuple((t["label"], Decimal(t["rate"])) for t in data["taxes"]["rates"]),
            compound=bool(data["taxes"]["compound"]),
            exempt=bool(data["billing_exempt"]),
        )

    @property
    def effective_token_price(self) -> Decimal:
        return Decimal(0) if self.exempt else self.token_price


class UsageInput(NamedTuple):
    """One stored usage row, as the rules need it."""

    server_id: int
    server_uuid: str
    server_name: str
    plan_id: int
    plan_name: str
    item: str  # one of PRICED_ITEMS, or a kind SolusIO added that holds the invoice
    started_at: datetime
    ended_at: datetime | None
    hours: int
    tokens_per_hour: int  # for a backup item: the server plan's runtime prices
    tokens_per_month: int
    reported_tokens: int | None  # what SolusIO says it charged, when it says
    backup_price: Decimal | None = None  # percent (R7); set on backup items


class LineDraft(NamedTuple):
    usage: UsageInput
    charge: Charge
    amount: Decimal

    @property
    def discrepancy(self) -> bool:
        """SolusIO reported a charge and it is not ours (DESIGN §4: flag, never trust)."""
        reported = self.usage.reported_tokens
        return reported is not None and reported != self.charge.tokens


@dataclass(frozen=True)
class InvoiceDraft:
    lines: tuple[LineDraft, ...]
    totals: Totals
    pricing: PricingSnapshot
    # Usage of kinds the rules cannot price: (kind, rows, hours) per kind, not billed.
    unknown: tuple[tuple[str, int, int], ...] = ()
    # Why staff must look before issuing for a reason outside the usage itself (the close
    # billed a fallback source); "" when there is none.
    review: str = ""

    @property
    def hold_reason(self) -> str:
        """Why this draft must wait for staff rather than be issued ("" when it need not):
        usage it cannot price, the `review` reason, or both ("; " between them)."""
        reasons = [self.review] if self.review else []
        if self.unknown:
            kinds = "; ".join(
                f"{kind!r}: {rows} rows, {hours} h" for kind, rows, hours in self.unknown
            )
            reasons.insert(
                0,
                f"SolusIO reported usage of a kind the bridge cannot price ({kinds}); it is "
                "not on this invoice. Review the usage records before issuing.",
            )
        return "; ".join(reasons)

    @property
    def tokens(self) -> int:
        return sum(line.charge.tokens for line in self.lines)

    @property
    def discrepancies(self) -> int:
        return sum(1 for line in self.lines if line.discrepancy)

    @functools.cached_property
    def line_values(self) -> tuple[tuple[Any, ...], ...]:
        """Each line's values in LINE_COLUMNS order (computed once: the close writes them
        and fingerprints them)."""
        return tuple(
            (
                position,
                u.server_id,
                u.server_uuid,
                u.server_name,
                u.plan_id,
                u.plan_name,
                u.item,
                u.started_at,
                u.ended_at,
                c.hours,
                c.tokens_per_hour,
                c.tokens_per_month,
                str(c.rule),
                c.tokens,
                amount,
                u.reported_tokens,
                u.reported_tokens is not None and u.reported_tokens != c.tokens,
                u.backup_price,
            )
            for position, (u, c, amount) in enumerate(self.lines, start=1)
        )

    def fingerprint(self) -> str:
        """A digest of everything the invoice shows: equal digests, equal invoices, so a
        re-run can tell that a stored draft is already right and leave it alone."""
        # What came after the first version (hold reason, backup price) is added only when
        # set, so drafts without it keep the digests they were stored with.
        content = [_pricing_text(self.pricing)]
        if self.hold_reason:
            content.append(self.hold_reason)
        # Each line as repr((v[:7], (started, ended), v[9:])), times as ISO text (their repr
        # would depend on which tzinfo object they carry), and the backup price only when
        # set; written with one format (the same text) rather than by building those
        # tuples: the digests were a fifth of the build.
        for v in self.line_values:
            ended = v[8]
            backup = v[17]
            content.append(
                _LINE_DIGEST
                % (
                    *v[:7],
                    v[7].isoformat(),
                    ended.isoformat() if ended else None,
                    *v[9:17],
                    "" if backup is None else f", {backup!r}",
                )
            )
        return hashlib.sha256("\n".join(content).encode()).hexdigest()


# A close's customers share a handful of snapshots: their text is made once each.
@functools.lru_cache(maxsize=1 << 10)
def _pricing_text(pricing: PricingSnapshot) -> str:
    return repr(pricing.as_json())


# A line's text in `InvoiceDraft.fingerprint`: what repr() writes for the tuple
# (v[:7], (started, ended), v[9:]), the last value (the backup price) given as ", %r" or "".
_LINE_DIGEST = "((%r, %r, %r, %r, %r, %r, %r), (%r, %r), (%r, %r, %r, %r, %r, %r, %r, %r%s))"


# The values of an invoice line, in `InvoiceDraft.line_values` order.
LINE_COLUMNS = (
    "position",
    "server_id",
    "server_uuid",
    "server_name",
    "plan_id",
    "plan_name",
    "item",
    "started_at",
    "ended_at",
    "hours",
    "tokens_per_hour",
    "tokens_per_month",
    "rule",
    "tokens",
    "amount",
    "reported_tokens",
    "discrepancy",
    "backup_price",
)


def line_order(usage: UsageInput) -> tuple[int, bool, str, datetime]:
    """Lines in a stable order: by server, the server before its IP, then by time."""
    return (usage.server_id, usage.item != "server", usage.item, usage.started_at)


def build_invoice(
    usage: Sequence[UsageInput], pricing: PricingSnapshot, review: str = ""
) -> InvoiceDraft:
    """One customer's invoice for one period: a line per usage item (R6: each capped on
    its own, see the module docstring for resized servers), then DESIGN §6's money.
    Items of a kind the rules do not price are left off and named in `unknown`; `review`:
    why staff must look at it anyway (`InvoiceDraft.review`)."""
    priced: list[UsageInput] = []
    unknown: dict[str, list[int]] = {}
    for u in usage:
        if u.item in PRICED_ITEMS:
            priced.append(u)
        else:
            counts = unknown.setdefault(u.item, [0, 0])
            counts[0] += 1
            counts[1] += u.hours
    ordered = sorted(priced, key=line_order)
    charges = [item_charge(u) for u in ordered]
    totals = invoice_totals(
        [c.tokens for c in charges],
        pricing.effective_token_price,
        [m for _, m in pricing.discounts],
        pricing.taxes,
        pricing.compound,
        pricing.decimals,
    )
    lines = tuple(
        LineDraft(u, c, a) for u, c, a in zip(ordered, charges, totals.line_amounts, strict=True)
    )
    held = tuple((kind, rows, hours) for kind, (rows, hours) in sorted(unknown.items()))
    return InvoiceDraft(lines, totals, pricing, held, review)


def render_totals(line_tokens: Sequence[int], pricing: PricingSnapshot) -> Totals:
    """Totals re-rendered from an invoice's stored tokens and snapshot alone (audit)."""
    return invoice_totals(
        line_tokens,
        pricing.effective_token_price,
        [m for _, m in pricing.discounts],
        pricing.taxes,
        pricing.compound,
        pricing.decimals,
    )
