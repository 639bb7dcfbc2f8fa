"""Pure price arithmetic: no ORM, no HTTP. Decimal in, Decimal out; tokens are int.
The rounding rules (unit costs, money) are bridge.money's, applied where stated.
"""

from collections.abc import Iterable, Sequence
from decimal import Decimal, localcontext

from bridge import money

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


def user_token_unit_cost(
    base: Decimal,
    multipliers: Sequence[Decimal],
    rates_percent: Sequence[Decimal],
    compound: bool,
    exempt: bool = False,
) -> Decimal:
    """DESIGN §3: base × Π(multipliers) × tax_factor, 0 for a billing-exempt customer;
    the exact product rounded as a token price (half-up to 15 significant digits)."""
    if exempt:
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        exact = base * discount_factor(multipliers) * tax_factor(rates_percent, compound)
    return money.round_token_price(exact)


def tokens_to_money(tokens: int, token_price: Decimal, decimals: int) -> Decimal:
    """tokens × token price, half-up to the currency's decimals."""
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        return money.round_money(tokens * token_price, decimals)


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


__all__ = [
    "CONVERSION_SCHEME_TOKENS",
    "HOURS_IN_LONGEST_MONTH",
    "aggregated_month_tokens",
    "suggested_monthly_tokens",
    "tax_factor",
    "tokens_to_money",
    "user_token_unit_cost",
]
