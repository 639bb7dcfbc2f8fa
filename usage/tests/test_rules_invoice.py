"""Pure invoice rules: periods, snapshots, building and re-rendering."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.calc import user_token_unit_cost
from usage.rules import (
    PricingSnapshot,
    UsageInput,
    build_invoice,
    parse_period,
    period_containing,
    period_of_month,
    previous_period,
    render_totals,
)

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def usage(server: int, hours: int, tph: int, tpm: int, reported: int | None = None) -> UsageInput:
    return UsageInput(
        server,
        f"uuid-{server}",
        f"srv{server}",
        1,
        "plan",
        "server",
        T0,
        T0 + timedelta(hours=hours),
        hours,
        tph,
        tpm,
        reported,
    )


SEED = PricingSnapshot(
    currency="GBP",
    token_price=Decimal("0.00079"),
    decimals=2,
    display_prefix="£",
    display_suffix=" GBP",
    thousands_separator=",",
    decimals_separator=".",
    discounts=(("Loyal", Decimal("0.95")),),
    taxes=(("City Tax", Decimal(6)), ("State Tax", Decimal(2))),
    compound=True,
    exempt=False,
)


def test_periods_are_half_open_calendar_months_of_the_billing_zone() -> None:
    p = parse_period("2026-12", "UTC")
    assert (p.start, p.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert p.contains(p.start)
    assert not p.contains(p.end)
    tokyo = period_of_month(2026, 10, "Asia/Tokyo")
    assert tokyo.start == datetime(2026, 9, 30, 15, tzinfo=UTC)
    assert previous_period(datetime(2026, 11, 1, 0, 30, tzinfo=UTC), "UTC").label == "2026-10"
    assert period_containing(datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "Europe/Berlin").label == (
        "2026-11"
    )
    with pytest.raises(ValueError, match="2026-10"):
        parse_period("2026-13", "UTC")


@given(year=st.integers(2001, 2098), month=st.integers(1, 12))
def test_consecutive_periods_tile_time(year: int, month: int) -> None:
    zone = "America/New_York"
    p = period_of_month(year, month, zone)
    following = period_containing(p.end, zone)
    assert following.start == p.end
    assert 27 * 24 <= (p.end - p.start) / timedelta(hours=1) <= 31 * 24 + 1


def test_the_seed_customer_invoice() -> None:
    draft = build_invoice([usage(2, 730, 7, 5000), usage(1, 700, 7, 5000, reported=4900)], SEED)
    assert [line.usage.server_id for line in draft.lines] == [1, 2]  # stable order
    assert [line.charge.tokens for line in draft.lines] == [4900, 5000]
    # 4,900 × 0.00079 × 0.95 = 3.67745 → 3.68; 5,000 → 3.7525 → 3.75
    assert draft.totals.line_amounts == (Decimal("3.68"), Decimal("3.75"))
    assert [t.amount for t in draft.totals.taxes] == [Decimal("0.45"), Decimal("0.16")]
    assert draft.totals.total == Decimal("8.04")
    assert draft.discrepancies == 0


def test_a_billing_exempt_customer_gets_zero_lines_with_their_tokens() -> None:
    exempt = PricingSnapshot(**{**SEED.__dict__, "exempt": True})
    draft = build_invoice([usage(1, 744, 7, 5000)], exempt)
    assert draft.tokens == 5000
    assert draft.totals.total == 0


def test_a_reported_charge_that_differs_is_a_discrepancy() -> None:
    draft = build_invoice([usage(1, 10, 7, 5000, reported=71), usage(2, 10, 7, 0)], SEED)
    assert [line.discrepancy for line in draft.lines] == [True, False]


prices = st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("0.01"), places=8)
snapshots = st.builds(
    PricingSnapshot,
    currency=st.just("USD"),
    token_price=prices,
    decimals=st.integers(0, 4),
    display_prefix=st.just("$"),
    display_suffix=st.just(""),
    thousands_separator=st.just(","),
    decimals_separator=st.just("."),
    discounts=st.lists(
        st.tuples(st.text(max_size=5), st.decimals(Decimal("0.5"), Decimal(1), places=4)),
        max_size=2,
    ).map(tuple),
    taxes=st.lists(
        st.tuples(st.text(max_size=5), st.decimals(Decimal(0), Decimal(30), places=3)),
        max_size=3,
    ).map(tuple),
    compound=st.booleans(),
    exempt=st.just(False),
)
usages = st.lists(
    st.builds(
        usage,
        server=st.integers(1, 10**6),
        hours=st.integers(0, 745),
        tph=st.integers(0, 100),
        tpm=st.integers(0, 50_000),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150)
@given(rows=usages, pricing=snapshots)
def test_an_invoice_rerendered_from_its_stored_snapshot_equals_itself(
    rows: list[UsageInput], pricing: PricingSnapshot
) -> None:
    draft = build_invoice(rows, pricing)
    stored = json.loads(json.dumps(pricing.as_json()))  # through a JSON column
    again = PricingSnapshot.from_json(stored)
    assert again == pricing
    assert render_totals([line.charge.tokens for line in draft.lines], again) == draft.totals
    assert build_invoice(rows, again).fingerprint() == draft.fingerprint()


@settings(max_examples=150)
@given(rows=usages, pricing=snapshots)
def test_an_invoice_total_is_within_a_minor_unit_per_line_and_tax_of_the_exact_price(
    rows: list[UsageInput], pricing: PricingSnapshot
) -> None:
    draft = build_invoice(rows, pricing)
    unit = user_token_unit_cost(
        pricing.token_price,
        [m for _, m in pricing.discounts],
        [r for _, r in pricing.taxes],
        pricing.compound,
    )
    exact = Fraction(draft.tokens) * Fraction(unit)
    minor = Fraction(1, 10**pricing.decimals)
    slack = minor * (len(draft.lines) + len(pricing.taxes))
    # user_token_unit_cost is rounded to 15 significant digits: allow for that too.
    slack += Fraction(draft.tokens) * Fraction(unit) / 10**14
    assert abs(Fraction(draft.totals.total) - exact) <= slack
