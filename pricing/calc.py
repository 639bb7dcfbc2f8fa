"""Pure price arithmetic: no ORM, no HTTP. Decimal in, Decimal out; tokens are int.

Rounding rules, each stated where it is applied:
- user_token_unit_cost: the exact product, rounded half-up to 15 significant digits
  (UNIT_COST_SIGNIFICANT_DIGITS) — as many as an IEEE double, which SolusIO parses it
  into, carries faithfully.
- money amounts (tables, invoices): half-up to the currency's decimals.
"""

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext

UNIT_COST_SIGNIFICANT_DIGITS = 15
HOURS_IN_LONGEST_MONTH = 24 * 31  # Step 2 prices the 31-day month: 744 hours.
CONVERSION_SCHEME_TOKENS = (1, 10, 100, 1_000, 10_000)
# Enough digits that products of stored values (≤ 20 digits each, a handful of factors)
# are exact before the one deliberate rounding.
_EXACT_PRECISION = 400


def tax_factor(rates_percent: Sequence[Decimal], compound: bool) -> Decimal:
    """Compound: Π(1 + r/100). Simple: 1 + Σ r/100. Exact."""
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        if compound:
            factor = Decimal(1)
            for rate in rates_percent:
                factor *= 1 + rate / 100
            return factor
        return 1 + sum((rate / 100 for rate in rates_percent), Decimal(0))


def discount_factor(multipliers: Iterable[Decimal]) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        factor = Decimal(1)
        for multiplier in multipliers:
            factor *= multiplier
        return factor


def round_significant(value: Decimal, digits: int) -> Decimal:
    """Round half-up to `digits` significant digits."""
    if value == 0:
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        quantum = Decimal(1).scaleb(value.adjusted() - digits + 1)
        return value.quantize(quantum, rounding=ROUND_HALF_UP)


def user_token_unit_cost(
    base: Decimal,
    multipliers: Sequence[Decimal],
    rates_percent: Sequence[Decimal],
    compound: bool,
    exempt: bool = False,
) -> Decimal:
    """DESIGN §3: base × Π(multipliers) × tax_factor, 0 for a billing-exempt customer."""
    if exempt:
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        exact = base * discount_factor(multipliers) * tax_factor(rates_percent, compound)
    return round_significant(exact, UNIT_COST_SIGNIFICANT_DIGITS)


def money(amount: Decimal, decimals: int) -> Decimal:
    """Round half-up to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def tokens_to_money(tokens: int, token_price: Decimal, decimals: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        return money(tokens * token_price, decimals)


def aggregated_month_tokens(tokens_per_hour: int) -> int:
    """Step 2: tokens per hour × 24 hours × 31 days."""
    return tokens_per_hour * HOURS_IN_LONGEST_MONTH


def suggested_monthly_tokens(aggregated: int) -> int:
    """Round down to a multiple of half the leading power of ten (Step 2's round price):
    5208 → 5000, 10416 → 10000, 15624 → 15000, 744 → 700. Below 10 nothing is rounded.
    """
    if aggregated < 10:
        return aggregated
    step = 10 ** (len(str(aggregated)) - 1) // 2
    return aggregated // step * step


def format_number(
    amount: Decimal, decimals: int, thousands_separator: str, decimals_separator: str
) -> str:
    """Positional notation with the currency's separators, half-up to `decimals`."""
    rounded = amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    whole, _, fraction = format(abs(rounded), "f").partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    text = thousands_separator.join(groups)
    if decimals > 0:
        text += decimals_separator + fraction
    return sign + text


def conversion_decimals(token_price: Decimal) -> int:
    """Digits to show a token price with: at least 5 (the seed's $0.00100), more when the
    price has them."""
    exponent = token_price.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(5, -exponent)


__all__ = [
    "CONVERSION_SCHEME_TOKENS",
    "HOURS_IN_LONGEST_MONTH",
    "aggregated_month_tokens",
    "conversion_decimals",
    "format_number",
    "money",
    "round_significant",
    "suggested_monthly_tokens",
    "tax_factor",
    "tokens_to_money",
    "user_token_unit_cost",
]
