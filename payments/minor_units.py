"""Money as Stripe counts it: an integer in the currency's minor unit as Stripe defines it,
which differs from ISO 4217 for a few currencies. Plain functions (no Django), so the fake
Stripe shares them.

Rounding: half-up (bridge.money.round_money) to the places Stripe charges in; exact for any
currency configured with its ISO decimals.
"""

from decimal import Decimal

from bridge.money import round_money

# Stripe's zero-decimal currencies (amount 500 is ¥500).
ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
# Charged in whole units but counted in hundredths by the API (500 ISK is 50000).
WHOLE_UNITS_IN_HUNDREDTHS = frozenset({"ISK", "UGX"})
# Three-decimal currencies: counted in thousandths, charged to the hundredth (last digit 0).
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def _places(currency: str) -> tuple[int, int]:
    """(decimals the API counts in, decimals a charge may have)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0, 0
    if code in WHOLE_UNITS_IN_HUNDREDTHS:
        return 2, 0
    if code in THREE_DECIMAL:
        return 3, 2
    return 2, 2


def to_minor(amount: Decimal, currency: str) -> int:
    """`amount` as Stripe's integer amount: half-up to the places Stripe charges in."""
    api_places, charge_places = _places(currency)
    return int(round_money(amount, charge_places).scaleb(api_places))


def from_minor(amount: int, currency: str) -> Decimal:
    """Stripe's integer amount as money (exact)."""
    return Decimal(amount).scaleb(-_places(currency)[0])
