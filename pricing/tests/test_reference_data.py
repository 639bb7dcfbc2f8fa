"""Cache misses answer from reference data kept per generation: one query, same answer."""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing.models import Currency, Discount, TaxRule
from pricing.selectors import reference_data, tax_rules_for, taxes_applying, token_pricing
from pricing.services import bump_generation
from users.models import Customer

FORM = "token=test-pricing-token&action=GetTokenPricing&userid={}"


@pytest.fixture
def cast(gbp_customer: Customer, usd: Currency, eur: Currency) -> list[Customer]:
    now = timezone.now()
    TaxRule.objects.create(label="Everywhere", rate=Decimal("0.5"), order=0)
    TaxRule.objects.create(label="NY", rate=Decimal("4"), country="US", region="New York")
    TaxRule.objects.create(label="US", rate=Decimal("1.25"), country="US", order=5)
    window = Discount.objects.create(
        name="Window",
        multiplier=Decimal("0.8"),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=1),
    )
    future = Discount.objects.create(
        name="Future", multiplier=Decimal("0.5"), valid_from=now + timedelta(hours=3)
    )
    expired = Discount.objects.create(
        name="Expired", multiplier=Decimal("0.7"), valid_until=now - timedelta(hours=1)
    )
    people = [gbp_customer]
    for i, (currency, country, region, exempt, discounts) in enumerate(
        [
            (usd, "US", "new york ", False, [window, future]),
            (usd, "us", "", False, [expired]),
            (eur, "", "", False, []),
            (eur, "GB", "LONDON", True, [window]),
            (usd, "US", "Texas", False, [window, future, expired]),
        ],
        start=2,
    ):
        c = Customer.objects.create(
            id=i,
            email=f"c{i}@example.com",
            currency=currency,
            country=country,
            region=region,
            billing_exempt=exempt,
        )
        c.discounts.set(discounts)
        people.append(c)
    return people


@pytest.mark.django_db
def test_reference_data_gives_the_same_answer_as_the_tables(cast: list[Customer]) -> None:
    now = timezone.now()
    reference = reference_data()
    for customer in cast:
        direct = token_pricing(customer.pk, now)
        kept = token_pricing(customer.pk, now, reference)
        assert direct is not None
        assert kept is not None
        assert kept.as_response() == direct.as_response(), customer.pk
        assert kept.changes_at == direct.changes_at
    assert token_pricing(999, now, reference) is None


@pytest.mark.django_db
def test_one_query_per_customer_while_the_reference_data_is_kept(
    cast: list[Customer], django_assert_num_queries: Callable
) -> None:
    now = timezone.now()
    with django_assert_num_queries(4):
        reference = reference_data()
    with django_assert_num_queries(1):
        assert token_pricing(2, now, reference) is not None
    with django_assert_num_queries(1):
        assert token_pricing(999, now, reference) is None


@pytest.mark.django_db
def test_a_customer_newer_than_the_reference_data_is_read_from_the_tables(
    cast: list[Customer],
) -> None:
    reference = reference_data()
    extra = Discount.objects.create(name="Newer", multiplier=Decimal("0.25"))
    Customer.objects.get(pk=3).discounts.add(extra)
    pricing = token_pricing(3, timezone.now(), reference)
    assert pricing is not None
    assert [d.name for d in pricing.discounts] == ["Newer"]
    assert pricing.user_token_unit_cost == Decimal("0.00025") * Decimal("1.005") * Decimal("1.0125")


@pytest.mark.django_db(transaction=True)
def test_after_a_change_misses_cost_one_query_each(
    client: Client, cast: list[Customer], django_assert_num_queries: Callable
) -> None:
    for customer in cast:
        client.post("/api/solusio", FORM.format(customer.pk), "application/x-www-form-urlencoded")
    bump_generation()  # as any price change does
    with django_assert_num_queries(5):  # the reference data once, then the customer
        client.post("/api/solusio", FORM.format(2), "application/x-www-form-urlencoded")
    for customer in cast[2:]:
        with django_assert_num_queries(1):
            response = client.post(
                "/api/solusio", FORM.format(customer.pk), "application/x-www-form-urlencoded"
            )
        assert response.status_code == 200


regions = st.sampled_from(["", "London", "london", " LONDON ", "Leeds", "ß-land", "SS-LAND"])
countries = st.sampled_from(["", "GB", "gb", "US", "FR"])


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rules=st.lists(st.tuples(countries.filter(lambda c: c == c.upper()), regions), max_size=6),
    country=countries,
    region=regions,
)
def test_tax_rules_in_memory_match_the_query(
    rules: list[tuple[str, str]], country: str, region: str
) -> None:
    TaxRule.objects.all().delete()
    for i, (rule_country, rule_region) in enumerate(rules):
        TaxRule.objects.create(
            label=f"r{i}",
            rate=Decimal(1),
            country=rule_country,
            region=rule_region if rule_country else "",
            order=len(rules) - i,
        )
    loaded = list(TaxRule.objects.order_by("order", "id"))
    expected = [r.pk for r in tax_rules_for(country, region)]
    assert [r.pk for r in taxes_applying(loaded, country, region)] == expected


@pytest.mark.django_db
def test_regions_compare_by_case_folding() -> None:
    city = TaxRule.objects.create(label="City", rate=Decimal(6), country="GB", region="London")
    street = TaxRule.objects.create(label="Str", rate=Decimal(1), country="DE", region="STRASSE")
    assert tax_rules_for("gb", " london ") == [city]
    assert tax_rules_for("DE", "Straße") == [street]
    assert tax_rules_for("DE", "") == []
    assert tax_rules_for("", "London") == []
