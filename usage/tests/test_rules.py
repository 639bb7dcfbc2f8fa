"""DESIGN §5/§6 rules with the seed's numbers, and their properties."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usage.rules import Rule, charge, invoice_totals, line_amount, started_hours

T0 = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("duration", "hours"),
    [
        (timedelta(0), 0),
        (timedelta(minutes=5), 1),
        (timedelta(minutes=60), 1),
        (timedelta(minutes=60, seconds=1), 2),
        (timedelta(days=31), 744),
        (timedelta(microseconds=1), 1),
    ],
)
def test_every_started_hour_counts(duration: timedelta, hours: int) -> None:
    assert started_hours(T0, T0 + duration) == hours


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        started_hours(datetime(2026, 10, 1), datetime(2026, 10, 2))


@pytest.mark.parametrize(
    ("hours", "tph", "tpm", "rule", "tokens"),
    [
        (700, 7, 5000, Rule.HOURLY, 4900),  # seed: 700 h is under the cap
        (730, 7, 5000, Rule.MONTHLY_CAP, 5000),  # seed: 730 h would be 5,110
        (744, 7, 5000, Rule.MONTHLY_CAP, 5000),
        (1, 7, 5000, Rule.HOURLY, 7),  # a 5-minute server
        (744, 7, 0, Rule.HOURLY, 5208),  # tpm = 0: hourly only, no cap
        (1, 0, 5000, Rule.FIXED_MONTHLY, 5000),  # tph = 0: the fixed monthly price
        (744, 0, 5000, Rule.FIXED_MONTHLY, 5000),
        (0, 0, 5000, Rule.FIXED_MONTHLY, 0),
        (744, 0, 0, Rule.FREE, 0),  # both 0: a zero line
        (714, 7, 5000, Rule.HOURLY, 4998),
        (715, 7, 5000, Rule.MONTHLY_CAP, 5000),
    ],
)
def test_charge_rules(hours: int, tph: int, tpm: int, rule: Rule, tokens: int) -> None:
    result = charge(hours, tph, tpm)
    assert (result.rule, result.tokens) == (rule, tokens)


def test_the_seed_plans_table_at_a_full_31_day_month() -> None:
    for tph, tpm in ((7, 5000), (14, 10000), (21, 15000), (28, 20000)):
        assert charge(744, tph, tpm).tokens == tpm
        assert charge(744, tph, 0).tokens == tph * 744


def test_segments_of_a_resized_server_are_capped_each_on_its_own() -> None:
    # README's worked example: 400 h on 7/5000, then 344 h on 14/10000.
    assert charge(400, 7, 5000).tokens + charge(344, 14, 10000).tokens == 7616


def test_design_money_example() -> None:
    # 5,000 tokens at $0.001 with 5 % off, then 6 % and 2 % compounding.
    totals = invoice_totals(
        [5000],
        Decimal("0.001"),
        [Decimal("0.95")],
        [("City Tax", Decimal(6)), ("State Tax", Decimal(2))],
        True,
        2,
    )
    assert totals.subtotal == Decimal("4.75")
    assert [t.amount for t in totals.taxes] == [Decimal("0.29"), Decimal("0.10")]
    assert totals.total == Decimal("5.14")
    simple = invoice_totals(
        [5000],
        Decimal("0.001"),
        [Decimal("0.95")],
        [("City Tax", Decimal(6)), ("State Tax", Decimal(2))],
        False,
        2,
    )
    assert [t.amount for t in simple.taxes] == [Decimal("0.29"), Decimal("0.10")]
    assert simple.taxes[1].base == Decimal("4.75")


def test_line_amount_rounds_half_up() -> None:
    assert line_amount(5208, Decimal("0.001"), [], 2) == Decimal("5.21")
    assert line_amount(5, Decimal("0.001"), [], 2) == Decimal("0.01")  # 0.005 → 0.01
    assert line_amount(4, Decimal("0.001"), [], 2) == Decimal("0.00")
    assert line_amount(5000, Decimal("0.00091"), [], 0) == Decimal("5")


hours_st = st.integers(min_value=0, max_value=24 * 31)
price_st = st.integers(min_value=0, max_value=100_000)


@given(hours=hours_st, tph=price_st, tpm=st.integers(min_value=1, max_value=10_000_000))
def test_charge_never_exceeds_a_positive_monthly_price(hours: int, tph: int, tpm: int) -> None:
    assert charge(hours, tph, tpm).tokens <= tpm


@given(hours=hours_st, tph=price_st, tpm=price_st)
def test_charge_is_monotone_in_hours(hours: int, tph: int, tpm: int) -> None:
    assert charge(hours, tph, tpm).tokens <= charge(hours + 1, tph, tpm).tokens


money_st = st.decimals(min_value=Decimal("0.0000000001"), max_value=Decimal(10), places=10).filter(
    lambda d: d > 0
)


@given(
    tokens=st.lists(st.integers(min_value=0, max_value=10_000_000), min_size=1, max_size=20),
    price=money_st,
    multipliers=st.lists(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1), places=6), max_size=3
    ),
    # ≤ 25 % each, so that three compounding taxes stay below doubling the amount.
    rates=st.lists(st.decimals(min_value=Decimal(0), max_value=Decimal(25), places=4), max_size=3),
    compound=st.booleans(),
    decimals=st.integers(min_value=0, max_value=4),
)
def test_invoice_total_is_within_a_minor_unit_per_line_and_tax_of_the_exact_price(
    tokens: list[int],
    price: Decimal,
    multipliers: list[Decimal],
    rates: list[Decimal],
    compound: bool,
    decimals: int,
) -> None:
    taxes = [(f"t{i}", r) for i, r in enumerate(rates)]
    totals = invoice_totals(tokens, price, multipliers, taxes, compound, decimals)
    unit = Fraction(price)
    for m in multipliers:
        unit *= Fraction(m)
    if compound:
        for r in rates:
            unit *= 1 + Fraction(r) / 100
    else:
        unit *= 1 + sum((Fraction(r) / 100 for r in rates), Fraction(0))
    exact = sum(tokens) * unit
    # Each line rounds by at most half a minor unit, which taxes (a factor ≤ 2 here) can at
    # most double; each tax rounds by at most half a minor unit.
    assert abs(Fraction(totals.total) - exact) <= Fraction(len(tokens) + len(rates), 10**decimals)
