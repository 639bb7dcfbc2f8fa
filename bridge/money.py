"""Money and token figures: the one place that rounds them and writes them for people.

Rounding: money is rounded half-up to the currency's decimals (its minor unit); a token
price that is computed (a customer's unit cost) is rounded half-up to 15 significant
digits. Display: a currency's prefix, separators, decimals and suffix, tokens grouped in
thousands. Plain values in, so pricing, usage and users all build on it.

Separators follow the active language (issue 12 §5): in the bridge's own language
(LANGUAGE_CODE, English) they are the currency's, as staff set them for SolusIO; in another
language they are that language's (Django's locale formats: German writes 1.234,56 whatever
the currency), so a third language needs no code here. Digits never go through float.
"""

from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Protocol

from django.conf import settings
from django.utils import formats, translation
from django.utils.translation import gettext

from bridge.jsonnum import plain_decimal

# As many digits as an IEEE double carries faithfully: SolusIO parses a unit cost into one.
TOKEN_PRICE_SIGNIFICANT_DIGITS = 15
# Token prices are shown with at least this many decimals (the seed's "$0.00100").
TOKEN_PRICE_MIN_DECIMALS = 5
# Enough digits that the products this project rounds are exact before they are rounded.
_EXACT_PRECISION = 400
# An amount is one word: "£3.58 GBP" never breaks onto two lines, in a page, a PDF or a mail.
NBSP = "\u00a0"


class CurrencyDisplay(Protocol):
    """How a currency writes amounts: `pricing.models.Currency` and an invoice's
    `usage.rules.PricingSnapshot` both are one."""

    @property
    def display_prefix(self) -> str: ...
    @property
    def display_suffix(self) -> str: ...
    @property
    def decimals(self) -> int: ...
    @property
    def thousands_separator(self) -> str: ...
    @property
    def decimals_separator(self) -> str: ...


# --- Rounding ------------------------------------------------------------------------------


def round_money(amount: Decimal, decimals: int) -> Decimal:
    """Half-up to `decimals` places: the currency's minor unit for money."""
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        return amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def round_significant(value: Decimal, digits: int) -> Decimal:
    """Half-up to `digits` significant digits."""
    if value == 0:
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        quantum = Decimal(1).scaleb(value.adjusted() - digits + 1)
        return value.quantize(quantum, rounding=ROUND_HALF_UP)


def round_token_price(value: Decimal) -> Decimal:
    """A computed token price: half-up to TOKEN_PRICE_SIGNIFICANT_DIGITS significant digits."""
    return round_significant(value, TOKEN_PRICE_SIGNIFICANT_DIGITS)


def token_price_decimals(token_price: Decimal) -> int:
    """Decimals to show prices at this token price with: at least TOKEN_PRICE_MIN_DECIMALS,
    more when the price has them, so showing one never rounds it."""
    exponent = token_price.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(TOKEN_PRICE_MIN_DECIMALS, -exponent)


# --- Display -------------------------------------------------------------------------------


def _locale_separators() -> tuple[str, str] | None:
    """(thousands, decimals) of the active language; None in the bridge's own language,
    where each currency's separators apply."""
    language = translation.get_language()
    if not language or language.split("-")[0] == settings.LANGUAGE_CODE.split("-")[0]:
        return None
    return (
        str(formats.get_format("THOUSAND_SEPARATOR", lang=language)),
        str(formats.get_format("DECIMAL_SEPARATOR", lang=language)),
    )


def _separators(currency: CurrencyDisplay) -> tuple[str, str]:
    return _locale_separators() or (currency.thousands_separator, currency.decimals_separator)


def localize_plain(value: Decimal) -> str:
    """A number in plain digits, exact, with the active language's decimal mark:
    "12.5", in German "12,5" (never "1E+1")."""
    text = plain_decimal(value)
    separators = _locale_separators()
    return text.replace(".", separators[1]) if separators else text


def format_number(
    amount: Decimal, decimals: int, thousands_separator: str, decimals_separator: str
) -> str:
    """Positional notation with the given separators, half-up to `decimals`."""
    rounded = round_money(amount, decimals)
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


def _unbreakable(text: str) -> str:
    return text.replace(" ", NBSP)


def format_money(
    amount: Decimal,
    currency: CurrencyDisplay,
    *,
    decimals: int | None = None,
    compact: bool = False,
) -> str:
    """An amount as the currency writes it: "-£5.00 GBP", "12.345,60 €", its spaces
    non-breaking.

    compact: for tables whose heading already names the currency: the prefix alone
    ("$5.21"); the suffix only stands in when there is no prefix, so a bare number is never
    shown. decimals: more places than the currency's (token prices), never fewer.
    """
    digits = currency.decimals if decimals is None else decimals
    number = format_number(amount, digits, *_separators(currency))
    sign, number = ("-", number[1:]) if number.startswith("-") else ("", number)
    prefix, suffix = currency.display_prefix, currency.display_suffix
    if compact and prefix:
        suffix = ""
    return _unbreakable(f"{sign}{prefix}{number}{suffix}")


def format_tokens(tokens: int, currency: CurrencyDisplay | None = None) -> str:
    """A token count grouped in thousands: with commas, like the seed, or beside a
    currency's amounts with its thousands separator, so "5,000" never reads as five where
    the comma is the decimal mark (a currency without one groups with a non-breaking space).
    In another language than the bridge's: that language's grouping ("5.000" in German).
    """
    localized = _locale_separators()
    if localized:
        separator = localized[0]
    else:
        separator = "," if currency is None else currency.thousands_separator
    return _unbreakable(format_number(Decimal(tokens), 0, separator or NBSP, "."))


def format_percent(rate: Decimal) -> str:
    """A rate in percent, exact, in plain digits: "6 %", "12.5 %" (never "1E+1 %"); in
    German "12,5 %"."""
    return f"{localize_plain(rate)}{NBSP}%"


def format_discount(multiplier: Decimal) -> str:
    """A discount multiplier as people read it: 0.95 → "5 % discount (×0.95)"."""
    return gettext("%(percent)s discount (×%(multiplier)s)") % {
        "percent": format_percent((1 - multiplier) * 100),
        "multiplier": localize_plain(multiplier),
    }


__all__ = [
    "NBSP",
    "TOKEN_PRICE_MIN_DECIMALS",
    "TOKEN_PRICE_SIGNIFICANT_DIGITS",
    "CurrencyDisplay",
    "format_discount",
    "format_money",
    "format_number",
    "format_percent",
    "format_tokens",
    "localize_plain",
    "round_money",
    "round_significant",
    "round_token_price",
    "token_price_decimals",
]
