"""Shared fixtures: the seed's cast (currencies, discount, taxes, a GBP customer)."""

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.core.cache import cache

from bridge.i18n import compile_catalogues
from pricing.models import Currency, Discount, PricingSettings, TaxRule
from users.models import Customer


def pytest_configure(config: pytest.Config) -> None:
    # The .mo catalogues are build output (bin/setup makes them): a plain `pytest` after a
    # .po changed must not test yesterday's translations. Before any test activates one.
    compile_catalogues(only_stale=True)


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # The test database is rolled back after each test; cached answers must go with it.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def usd(db: None) -> Currency:
    return Currency.objects.create(
        code="USD", token_price=Decimal("0.001"), display_prefix="$", display_suffix=" USD"
    )


@pytest.fixture
def eur(db: None) -> Currency:
    return Currency.objects.create(
        code="EUR",
        token_price=Decimal("0.00091"),
        display_prefix="€",
        display_suffix=" EUR",
        thousands_separator=".",
        decimals_separator=",",
    )


@pytest.fixture
def gbp(db: None) -> Currency:
    return Currency.objects.create(
        code="GBP", token_price=Decimal("0.00079"), display_prefix="£", display_suffix=" GBP"
    )


@pytest.fixture
def loyalty(db: None) -> Discount:
    return Discount.objects.create(
        name="Special Client Group Discount",
        description="5% Recurring Discount",
        multiplier=Decimal("0.95"),
    )


@pytest.fixture
def seed_taxes(db: None) -> list[TaxRule]:
    """Step 6's City Tax 6 % and State Tax 2 %, compounding, for London, GB."""
    settings_row = PricingSettings.load()
    settings_row.taxes_compound = True
    settings_row.save()
    return [
        TaxRule.objects.create(
            label="City Tax", rate=Decimal(6), country="GB", region="London", order=1
        ),
        TaxRule.objects.create(label="State Tax", rate=Decimal(2), country="GB", order=2),
    ]


@pytest.fixture
def gbp_customer(gbp: Currency, loyalty: Discount, seed_taxes: list[TaxRule]) -> Customer:
    customer = Customer.objects.create(
        id=1,
        email="jane@example.co.uk",
        name="Jane Doe",
        currency=gbp,
        country="GB",
        region="London",
    )
    customer.discounts.add(loyalty)
    return customer
