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
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum

_ONE_HOUR = timedelta(hours=1)
_EXACT = 400  # Decimal precision at which products of stored values are exact


class Rule(StrEnum):
    HOURLY = "hourly"  # hours × tph, under the cap or with no cap (R2, R3)
    MONTHLY_CAP = "monthly_cap"  # hours × tph exceeded tpm, so tpm (R2)
    FIXED_MONTHLY = "fixed_monthly"  # tph = 0: the fixed monthly price (R4)
    FREE = "free"  # both prices 0 (R5)


def started_hours(started_at: datetime, ended_at: datetime) -> int:
    """R1: every started hour counts. 5 min → 1; 60 min → 1; 60 min 1 s → 2; 0 s → 0."""
    if started_at.tzinfo is None or ended_at.tzinfo is None:
        raise ValueError("usage times must be timezone-aware")
    if ended_at <= started_at:
        return 0
    return math.ceil((ended_at - started_at) / _ONE_HOUR)


@dataclass(frozen=True)
class Charge:
    hours: int
    tokens_per_hour: int
    tokens_per_month: int
    rule: Rule
    tokens: int


def charge(hours: int, tokens_per_hour: int, tokens_per_month: int) -> Charge:
    """Tokens for one usage item in one period (R2–R5)."""
    if hours < 0 or tokens_per_hour < 0 or tokens_per_month < 0:
        raise ValueError("hours and prices must not be negative")

    def made(rule: Rule, tokens: int) -> Charge:
        return Charge(hours, tokens_per_hour, tokens_per_month, rule, tokens)

    if tokens_per_hour == 0 and tokens_per_month == 0:
        return made(Rule.FREE, 0)
    if tokens_per_hour == 0:
        return made(Rule.FIXED_MONTHLY, tokens_per_month if hours > 0 else 0)
    hourly = hours * tokens_per_hour
    if tokens_per_month > 0 and hourly > tokens_per_month:
        return made(Rule.MONTHLY_CAP, tokens_per_month)
    return made(Rule.HOURLY, hourly)


# --- Money (DESIGN §6) -------------------------------------------------------------------


def round_money(amount: Decimal, decimals: int) -> Decimal:
    """Half-up to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


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
    with localcontext() as ctx:
        ctx.prec = _EXACT
        amount = Decimal(tokens) * token_price
        for multiplier in multipliers:
            amount *= multiplier
        return round_money(amount, decimals)


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
    amounts = tuple(line_amount(t, token_price, multipliers, decimals) for t in line_tokens)
    subtotal = sum(amounts, Decimal(0)).quantize(Decimal(1).scaleb(-decimals))
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
