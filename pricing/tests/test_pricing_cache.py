"""Cached GetTokenPricing answers follow every change that feeds them (real commits)."""

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from pricing.answercache import AnswerCache
from pricing.models import Currency, Discount, PricingSettings, TaxRule
from users.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)

FORM = "token=test-pricing-token&action=GetTokenPricing&userid={}"


def cost(client: Client, userid: int = 1) -> object:
    response = client.post(
        "/api/solusio", data=FORM.format(userid), content_type="application/x-www-form-urlencoded"
    )
    body = json.loads(response.content, parse_float=Decimal)
    return body["user_token_unit_cost"] if response.status_code == 200 else response.status_code


def test_a_cached_answer_needs_no_database_query(
    client: Client, gbp_customer: Customer, django_assert_num_queries: Callable
) -> None:
    assert cost(client) == Decimal("0.0008114406")
    with django_assert_num_queries(0):
        assert cost(client) == Decimal("0.0008114406")


def _change_tax_rate(c: Customer) -> None:
    rule = TaxRule.objects.get(label="City Tax")
    rule.rate = Decimal(10)
    rule.save()


def _change_discount(c: Customer) -> None:
    discount = c.discounts.get()
    discount.multiplier = Decimal("0.9")
    discount.save()


def _remove_discount(c: Customer) -> None:
    c.discounts.clear()


def _add_discount(c: Customer) -> None:
    c.discounts.add(Discount.objects.create(name="Extra", multiplier=Decimal("0.5")))


def _change_currency_price(c: Customer) -> None:
    currency = c.currency
    currency.token_price = Decimal("0.002")
    currency.save()


def _switch_to_simple_taxes(c: Customer) -> None:
    row = PricingSettings.load()
    row.taxes_compound = False
    row.save()


def _move_customer(c: Customer) -> None:
    c.region = "Leeds"
    c.save()


def _add_tax_rule(c: Customer) -> None:
    TaxRule.objects.create(label="New levy", rate=Decimal(1), country="GB", order=3)


def _delete_tax_rule(c: Customer) -> None:
    TaxRule.objects.get(label="State Tax").delete()


def _make_exempt(c: Customer) -> None:
    c.billing_exempt = True
    c.save()


def _delete_customer(c: Customer) -> None:
    c.delete()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _change_tax_rate,
            Decimal("0.00079") * Decimal("0.95") * Decimal("1.10") * Decimal("1.02"),
        ),
        (_change_discount, Decimal("0.00079") * Decimal("0.9") * Decimal("1.06") * Decimal("1.02")),
        (_remove_discount, Decimal("0.00079") * Decimal("1.06") * Decimal("1.02")),
        (_add_discount, Decimal("0.00079") * Decimal("0.475") * Decimal("1.06") * Decimal("1.02")),
        (
            _change_currency_price,
            Decimal("0.002") * Decimal("0.95") * Decimal("1.06") * Decimal("1.02"),
        ),
        (_switch_to_simple_taxes, Decimal("0.00079") * Decimal("0.95") * Decimal("1.08")),
        (_move_customer, Decimal("0.00079") * Decimal("0.95") * Decimal("1.02")),
        (
            _add_tax_rule,
            Decimal("0.00079")
            * Decimal("0.95")
            * Decimal("1.06")
            * Decimal("1.02")
            * Decimal("1.01"),
        ),
        (_delete_tax_rule, Decimal("0.00079") * Decimal("0.95") * Decimal("1.06")),
        (_make_exempt, Decimal(0)),
        (_delete_customer, 404),
    ],
)
def test_the_next_answer_reflects_a_change(
    client: Client, gbp_customer: Customer, change: Callable[[Customer], None], expected: object
) -> None:
    assert cost(client) == Decimal("0.0008114406")  # now cached
    change(gbp_customer)
    assert cost(client) == expected


def test_unknown_customer_is_cached_until_the_customer_is_created(
    client: Client, gbp: Currency, django_assert_num_queries: Callable
) -> None:
    assert cost(client, 5) == 404
    with django_assert_num_queries(0):
        assert cost(client, 5) == 404
    Customer.objects.create(id=5, email="new@example.com", currency=gbp)
    assert cost(client, 5) == Decimal("0.00079")


def test_a_discount_starts_and_ends_at_its_exact_second(client: Client, gbp: Currency) -> None:
    start = timezone.now().replace(microsecond=0) + timedelta(minutes=10)
    customer = Customer.objects.create(id=9, email="t@example.com", currency=gbp)
    customer.discounts.add(
        Discount.objects.create(
            name="Weekend",
            multiplier=Decimal("0.5"),
            valid_from=start,
            valid_until=start + timedelta(days=2),
        )
    )
    with time_machine.travel(start - timedelta(seconds=1), tick=False):
        assert cost(client, 9) == Decimal("0.00079")
    with time_machine.travel(start, tick=False):
        assert cost(client, 9) == Decimal("0.000395")
    with time_machine.travel(start + timedelta(days=2), tick=False):
        assert cost(client, 9) == Decimal("0.00079")


def test_losing_the_generation_key_invalidates_rather_than_serves_stale(
    client: Client, gbp_customer: Customer, answer_cache: AnswerCache
) -> None:
    assert cost(client) == Decimal("0.0008114406")
    answer_cache.shared.forget_generation()  # evicted, or Redis restarted without persistence
    TaxRule.objects.filter(label="City Tax").update(rate=Decimal(10))  # no signal
    assert cost(client) == Decimal("0.00079") * Decimal("0.95") * Decimal("1.10") * Decimal("1.02")


def test_answers_come_from_the_database_when_the_cache_is_down(
    client: Client, gbp_customer: Customer, make_answer_cache: Callable[..., AnswerCache]
) -> None:
    make_answer_cache(redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert cost(client) == Decimal("0.0008114406")
    assert cost(client) == Decimal("0.0008114406")


def test_a_transaction_that_changes_many_rows_bumps_the_generation_once(
    gbp: Currency, answer_cache: AnswerCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import transaction

    bumps: list[int] = []
    monkeypatch.setattr(answer_cache, "bump_generation", lambda: bumps.append(1))
    with transaction.atomic():
        for i in range(20):
            Customer.objects.create(id=100 + i, email=f"c{i}@example.com", currency=gbp)
    assert bumps == [1]


def test_a_change_after_a_rolled_back_savepoint_still_bumps(
    gbp: Currency, answer_cache: AnswerCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import transaction

    bumps: list[int] = []
    monkeypatch.setattr(answer_cache, "bump_generation", lambda: bumps.append(1))
    with transaction.atomic():
        try:
            with transaction.atomic():
                Customer.objects.create(id=200, email="x@example.com", currency=gbp)
                raise RuntimeError
        except RuntimeError:
            pass
        Customer.objects.create(id=201, email="y@example.com", currency=gbp)
    assert bumps == [1]


def test_without_redis_answers_are_kept_in_djangos_cache(
    client: Client,
    gbp_customer: Customer,
    make_answer_cache: Callable[..., AnswerCache],
    django_assert_num_queries: Callable,
) -> None:
    cache = make_answer_cache(redis_url="")  # the embedded run: the file cache
    assert cache.local is None
    assert cost(client) == Decimal("0.0008114406")
    with django_assert_num_queries(1):  # the generation, from the database each time
        assert cost(client) == Decimal("0.0008114406")
    _change_tax_rate(gbp_customer)
    assert cost(client) == Decimal("0.00079") * Decimal("0.95") * Decimal("1.10") * Decimal("1.02")
