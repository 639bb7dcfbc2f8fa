"""Pricing never serves a price older than a confirmed change (issue 10 §3), against a
private redis-server each test may fill, restrict, kill and restore."""

import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from django.db import connection, transaction
from django.test import Client

from pricing.answercache import AnswerCache, PricingCacheRefused
from pricing.models import TaxRule
from pricing.tests.redis_server import RedisServer
from users.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)

FORM = "token=test-pricing-token&action=GetTokenPricing&userid={}"
OLD = Decimal("0.0008114406")
NEW = Decimal("0.00079") * Decimal("0.95") * Decimal("1.10") * Decimal("1.02")
ASKS = 50


def cost(client: Client, userid: int = 1) -> object:
    response = client.post(
        "/api/solusio", data=FORM.format(userid), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200, response.content
    return json.loads(response.content, parse_float=Decimal)["user_token_unit_cost"]


def stale_answers(client: Client) -> int:
    answers = [cost(client) for _ in range(ASKS)]
    assert set(answers) <= {OLD, NEW}
    return answers.count(OLD)


def change_city_tax() -> None:
    """A staff change, as the admin makes it: in a transaction, with its signals."""
    with transaction.atomic():
        rule = TaxRule.objects.get(label="City Tax")
        rule.rate = Decimal(10)
        rule.save()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    yield redis_server
    redis_server.stop()


@pytest.fixture
def cache_on(
    server: RedisServer, make_answer_cache: Callable[..., AnswerCache]
) -> Callable[[int], AnswerCache]:
    def make(local_size: int) -> AnswerCache:
        return make_answer_cache(redis_url=server.url, local_size=local_size)

    return make


@pytest.fixture(params=[0, 1000], ids=["no-local", "local"])
def cache(request: pytest.FixtureRequest, cache_on: Callable[[int], AnswerCache]) -> AnswerCache:
    """The answer cache, with and without the per-process copy."""
    return cache_on(request.param)


def test_a_change_redis_cannot_store_is_not_served_stale(
    client: Client,
    gbp_customer: Customer,
    server: RedisServer,
    cache: AnswerCache,
) -> None:
    assert cost(client) == OLD  # cached
    with server.client() as raw:
        raw.config_set("maxmemory-policy", "noeviction")
        raw.config_set("maxmemory", 1)  # every write is refused from now on, reads answered
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            raw.set("probe", 1)
        change_city_tax()  # confirmed: the old generation could still be dropped
        assert stale_answers(client) == 0
        raw.config_set("maxmemory", 0)
    # Writable again: the next request publishes the generation, and answers are cached.
    assert stale_answers(client) == 0
    with server.client() as raw:
        assert raw.exists(cache.shared.answer_key(1))  # type: ignore[union-attr]


def test_a_change_redis_refuses_entirely_fails(
    client: Client,
    gbp_customer: Customer,
    server: RedisServer,
    cache_on: Callable[[int], AnswerCache],
) -> None:
    cache_on(1000)
    assert cost(client) == OLD
    with server.client() as raw:
        raw.acl_setuser("default", enabled=True, nopass=True, commands=["-del"])
    with pytest.raises(PricingCacheRefused):
        change_city_tax()
    assert TaxRule.objects.get(label="City Tax").rate == Decimal(6)  # rolled back
    assert cost(client) == OLD  # still the price in force


@pytest.fixture
def snapshot(
    client: Client, gbp_customer: Customer, server: RedisServer, cache: AnswerCache
) -> Path:
    """Redis's snapshot file, taken with the old generation and the old answer cached."""
    assert cost(client) == OLD
    with server.client() as raw:
        raw.save()
    return server.snapshot


def test_a_redis_restored_from_an_older_snapshot_serves_nothing_from_before(
    client: Client, server: RedisServer, cache: AnswerCache, snapshot: Path
) -> None:
    change_city_tax()
    assert stale_answers(client) == 0
    server.restart()  # killed, and started again from the older snapshot
    with server.client() as raw:
        assert OLD.to_eng_string().encode() in raw.get(cache.shared.answer_key(1))  # type: ignore[union-attr]
    assert stale_answers(client) == 0


def test_a_change_made_while_redis_was_down_is_served_once_it_is_back(
    client: Client, server: RedisServer, snapshot: Path
) -> None:
    server.stop()
    change_city_tax()  # committed: the cache cannot be served from while it is down
    assert stale_answers(client) == 0
    server.start()  # with its files: the old generation and answers are back
    assert stale_answers(client) == 0


def test_an_unconfirmed_change_bypasses_the_cache(
    client: Client, gbp_customer: Customer, cache_on: Callable[[int], AnswerCache]
) -> None:
    """Between the change's bump and its commit no request can publish a generation
    (the row is locked), so what is computed then is not kept."""
    cache = cache_on(1000)
    assert cost(client) == OLD
    published: list[bytes | None] = []

    def another_request() -> None:  # its own thread, its own database connection
        try:
            published.append(cache._publish())
        finally:
            connection.close()

    with transaction.atomic():
        rule = TaxRule.objects.get(label="City Tax")
        rule.rate = Decimal(10)
        rule.save()  # begun, not committed
        thread = threading.Thread(target=another_request)
        thread.start()
        thread.join()
    assert published == [None]
    assert cost(client) == NEW


def test_changes_under_way_do_not_wait_for_one_another(
    gbp_customer: Customer, cache_on: Callable[[int], AnswerCache]
) -> None:
    """Two open transactions that each changed pricing rows (in any order with their other
    locks) must not queue on a shared generation lock."""
    cache_on(1000)
    started, release = threading.Event(), threading.Event()

    def first() -> None:
        try:
            with transaction.atomic():
                rule = TaxRule.objects.get(label="City Tax")
                rule.rate = Decimal(10)
                rule.save()
                started.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert started.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        with transaction.atomic():
            gbp_customer.region = "Leeds"
            gbp_customer.save()  # would time out if it queued behind the first change
    finally:
        release.set()
        thread.join()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
