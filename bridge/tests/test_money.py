"""bridge.money: the rounding rules (against exact rationals) and the display rule."""

from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st

from bridge import money


@dataclass(frozen=True)
class Cur:
    display_prefix: str = "£"
    display_suffix: str = " GBP"
    decimals: int = 2
    thousands_separator: str = ","
    decimals_separator: str = "."


NB = money.NBSP  # amounts never break across lines
GBP = Cur()
EURO = Cur(display_prefix="", display_suffix=" €", thousands_separator=".", decimals_separator=",")

amounts = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=8)
places = st.integers(0, 4)


def half_up(value: Fraction, decimals: int) -> Fraction:
    """The reference: half-up (away from zero on a tie) by integer arithmetic."""
    scaled = abs(value) * 10**decimals
    whole = (scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)
    return Fraction(whole if value >= 0 else -whole, 10**decimals)


def test_money_is_written_as_the_currency_says() -> None:
    assert money.format_money(Decimal("12345.6"), EURO) == f"12.345,60{NB}€"
    assert money.format_money(Decimal("-5"), GBP) == f"-£5.00{NB}GBP"


def test_an_amount_is_one_word_so_it_never_wraps() -> None:
    assert money.format_money(Decimal("3.58"), GBP) == "£3.58\u00a0GBP"
    swiss = Cur(display_prefix="CHF ", display_suffix="", thousands_separator=" ")
    assert money.format_money(Decimal("1234.5"), swiss) == f"CHF{NB}1{NB}234.50"
    assert " " not in money.format_tokens(1_234_567, swiss)


def test_compact_drops_the_suffix_only_when_a_prefix_names_the_currency() -> None:
    assert money.format_money(Decimal("5.208"), GBP, compact=True) == "£5.21"
    assert money.format_money(Decimal("5.208"), EURO, compact=True) == f"5,21{NB}€"
    assert money.format_money(Decimal("0.001"), GBP, decimals=5, compact=True) == "£0.00100"


def test_half_a_minor_unit_rounds_away_from_zero() -> None:
    assert money.round_money(Decimal("0.125"), 2) == Decimal("0.13")
    assert money.round_money(Decimal("-0.125"), 2) == Decimal("-0.13")
    assert money.round_money(Decimal("2.5"), 0) == Decimal(3)
    assert str(money.round_money(Decimal(0), 2)) == "0.00"


def test_tokens_are_grouped_in_thousands() -> None:
    assert money.format_tokens(5208) == "5,208"
    assert money.format_tokens(1_234_567) == "1,234,567"
    assert money.format_tokens(744) == "744"


def test_tokens_beside_a_currency_are_grouped_with_its_thousands_separator() -> None:
    # "5,000" would read as five where the comma is the decimal mark.
    assert money.format_tokens(5000, EURO) == "5.000"
    assert money.format_tokens(5000, GBP) == "5,000"
    assert money.format_tokens(5000, Cur(thousands_separator="")) == f"5{NB}000"


def test_rates_and_discounts_read_as_people_write_them() -> None:
    assert money.format_percent(Decimal("6.000")) == f"6{NB}%"
    assert money.format_percent(Decimal("10")) == f"10{NB}%"  # not "1E+1"
    assert money.format_percent(Decimal("12.50")) == f"12.5{NB}%"
    assert money.format_discount(Decimal("0.950000")) == f"5{NB}% discount (×0.95)"
    assert money.format_discount(Decimal("0.875")) == f"12.5{NB}% discount (×0.875)"


def test_token_prices_are_shown_with_at_least_five_decimals_and_never_rounded() -> None:
    assert money.token_price_decimals(Decimal("0.001")) == 5
    assert money.token_price_decimals(Decimal("0.0008114406")) == 10


def test_a_token_price_keeps_fifteen_significant_digits() -> None:
    assert money.round_token_price(Decimal("0.00081144060000000049")) == Decimal(
        "0.000811440600000000"
    )
    assert money.round_token_price(Decimal("1.23456789012345500")) == Decimal("1.23456789012346")
    assert money.round_token_price(Decimal(0)) == 0


@given(amount=amounts, decimals=places)
def test_round_money_is_half_up_to_the_minor_unit(amount: Decimal, decimals: int) -> None:
    rounded = money.round_money(amount, decimals)
    assert Fraction(rounded) == half_up(Fraction(amount), decimals)
    assert rounded.as_tuple().exponent == -decimals  # always written with all its places
    assert money.round_money(rounded, decimals) == rounded


@given(amount=amounts, decimals=places)
def test_rounding_is_symmetric_around_zero(amount: Decimal, decimals: int) -> None:
    assert money.round_money(-amount, decimals) == -money.round_money(amount, decimals)


@given(
    value=st.decimals(min_value=Decimal("1e-10"), max_value=Decimal("1e10"), places=25),
)
def test_round_token_price_is_half_up_to_fifteen_significant_digits(value: Decimal) -> None:
    rounded = money.round_token_price(value)
    assert len(rounded.normalize().as_tuple().digits) <= money.TOKEN_PRICE_SIGNIFICANT_DIGITS
    shift = money.TOKEN_PRICE_SIGNIFICANT_DIGITS - 1 - value.adjusted()
    assert Fraction(rounded) == half_up(Fraction(value), shift)


@given(amount=amounts, decimals=places, cur=st.sampled_from([GBP, EURO]))
def test_the_display_reads_back_as_the_rounded_amount(
    amount: Decimal, decimals: int, cur: Cur
) -> None:
    cur = replace(cur, decimals=decimals)
    text = money.format_money(amount, cur).replace(NB, " ")
    sign = text.startswith("-")
    body = text.removeprefix("-").removeprefix(cur.display_prefix)
    assert body.endswith(cur.display_suffix)
    number = body.removesuffix(cur.display_suffix)
    plain = number.replace(cur.thousands_separator, "").replace(cur.decimals_separator, ".")
    assert Decimal(("-" if sign else "") + plain) == money.round_money(amount, decimals)
    assert all(
        len(group) == 3
        for group in number.split(cur.decimals_separator)[0].split(cur.thousands_separator)[1:]
    )


@given(tokens=st.integers(0, 10**15))
def test_token_display_reads_back_as_the_count(tokens: int) -> None:
    text = money.format_tokens(tokens)
    assert int(text.replace(",", "")) == tokens
    assert all(len(group) == 3 for group in text.split(",")[1:])


# --- In the customer's language (issue 12 §5) ------------------------------------------------


def test_german_writes_decimal_commas_and_point_grouping_whatever_the_currency() -> None:
    with translation.override("de"):
        assert money.format_money(Decimal("1234567.5"), GBP) == f"£1.234.567,50{NB}GBP"
        assert money.format_money(Decimal("12345.6"), EURO) == f"12.345,60{NB}€"
        assert money.format_money(Decimal("0.001"), GBP, decimals=5) == f"£0,00100{NB}GBP"
        assert money.format_tokens(5000) == "5.000"
        assert money.format_tokens(5000, GBP) == "5.000"
        assert money.format_percent(Decimal("12.50")) == f"12,5{NB}%"
        assert money.format_discount(Decimal("0.95")) == f"5{NB}% Rabatt (×0,95)"
        assert money.localize_plain(Decimal("0.00079")) == "0,00079"
    # English keeps each currency's own separators, as before.
    with translation.override("en"):
        assert money.format_money(Decimal("1234567.5"), GBP) == f"£1,234,567.50{NB}GBP"
        assert money.format_money(Decimal("12345.6"), EURO) == f"12.345,60{NB}€"
        assert money.format_tokens(5000, EURO) == "5.000"


@given(amount=amounts, decimals=places, cur=st.sampled_from([GBP, EURO]))
def test_the_german_display_reads_back_as_the_rounded_amount(
    amount: Decimal, decimals: int, cur: Cur
) -> None:
    cur = replace(cur, decimals=decimals)
    with translation.override("de"):
        text = money.format_money(amount, cur).replace(NB, " ")
    sign = text.startswith("-")
    number = text.removeprefix("-").removeprefix(cur.display_prefix)
    number = number.removesuffix(cur.display_suffix)
    whole, _, fraction = number.partition(",")
    assert all(len(group) == 3 for group in whole.split(".")[1:])
    assert len(fraction) == decimals
    plain = whole.replace(".", "") + ("." + fraction if fraction else "")
    assert Decimal(("-" if sign else "") + plain) == money.round_money(amount, decimals)
