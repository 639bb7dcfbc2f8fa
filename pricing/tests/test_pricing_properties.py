"""Property: user_token_unit_cost is the DESIGN §3 formula, to the last serialised digit.

The reference is computed independently in fractions.Fraction (exact rationals) and
rounded half-up to 15 significant digits by integer arithmetic, then compared with what
the endpoint actually puts on the wire.
"""

import json
from decimal import Decimal
from fractions import Fraction

import pytest
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import jsonnum
from pricing import calc
from pricing.answercache import AnswerCache
from pricing.models import Currency, Discount, PricingSettings, TaxRule
from users.models import Customer

token_prices = st.decimals(
    min_value=Decimal("0.0000000001"), max_value=Decimal("9999999999"), places=10
).filter(lambda d: d > 0)
multipliers = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(1), places=6).filter(
    lambda d: d > 0
)
rates = st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=4)


def reference(base: Decimal, mults: list[Decimal], taxes: list[Decimal], compound: bool) -> str:
    value = Fraction(base)
    for m in mults:
        value *= Fraction(m)
    if compound:
        for r in taxes:
            value *= 1 + Fraction(r) / 100
    else:
        value *= 1 + sum((Fraction(r) / 100 for r in taxes), Fraction(0))
    # exponent e with 10**e <= value < 10**(e+1)
    e = 0
    while Fraction(10) ** e > value:
        e -= 1
    while Fraction(10) ** (e + 1) <= value:
        e += 1
    shift = 14 - e  # keep 15 significant digits
    scaled = value * Fraction(10) ** shift
    digits = (scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)  # half-up
    return jsonnum.plain_decimal(Decimal(digits).scaleb(-shift))


@settings(max_examples=500, deadline=None)
@given(
    base=token_prices,
    mults=st.lists(multipliers, max_size=4),
    taxes=st.lists(rates, max_size=4),
    compound=st.booleans(),
)
def test_unit_cost_equals_the_fraction_formula(
    base: Decimal, mults: list[Decimal], taxes: list[Decimal], compound: bool
) -> None:
    got = jsonnum.plain_decimal(calc.user_token_unit_cost(base, mults, taxes, compound))
    assert got == reference(base, mults, taxes, compound)


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    base=token_prices,
    mults=st.lists(multipliers, max_size=3),
    taxes=st.lists(rates, max_size=3),
    compound=st.booleans(),
)
def test_the_endpoint_serialises_the_fraction_formula_exactly(
    client: Client,
    answer_cache: AnswerCache,
    base: Decimal,
    mults: list[Decimal],
    taxes: list[Decimal],
    compound: bool,
) -> None:
    with transaction.atomic():
        answer_cache.bump_generation()  # the last example's answers (no commit, no signal)
        PricingSettings.objects.update_or_create(pk=1, defaults={"taxes_compound": compound})
        currency = Currency.objects.create(code="XTS", token_price=base)
        customer = Customer.objects.create(
            id=77, email="p@example.com", currency=currency, country="ZZ"
        )
        for i, m in enumerate(mults):
            customer.discounts.add(Discount.objects.create(name=f"d{i}", multiplier=m))
        for i, r in enumerate(taxes):
            TaxRule.objects.create(label=f"t{i}", rate=r, country="ZZ", order=i)
        response = client.post(
            "/api/solusio",
            data="token=test-pricing-token&action=GetTokenPricing&userid=77",
            content_type="application/x-www-form-urlencoded",
        )
        transaction.set_rollback(True)
    assert response.status_code == 200
    raw = response.content.decode()
    expected = reference(base, mults, taxes, compound)
    assert f'"user_token_unit_cost":{expected},' in raw
    assert json.loads(raw)["base_token_unit_cost"] == float(base)


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_plain_decimal_is_positional_json_and_round_trips(value: Decimal) -> None:
    text = jsonnum.plain_decimal(value)
    assert "E" not in text.upper()
    assert Decimal(text) == value
    json.loads(text)  # a valid JSON number
