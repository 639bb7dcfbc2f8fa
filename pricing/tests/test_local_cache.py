"""The per-process first level of pricing answers (pricing/localcache.py).

It must never answer from a generation Redis has not confirmed: every test changes the
data behind the bridge's back (no signal) and then moves the generation some other way.
"""

import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.test import Client

from pricing.answercache import AnswerCache, RedisShared, RestartCheck, committed_generation
from pricing.localcache import GenerationWatcher, LocalAnswers
from pricing.models import TaxRule
from pricing.tests.redis_server import RedisServer
from users.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)

FORM = "token=test-pricing-token&action=GetTokenPricing&userid={}"
SEED_COST = Decimal("0.0008114406")
TEN_PERCENT_CITY_TAX = Decimal("0.00079") * Decimal("0.95") * Decimal("1.10") * Decimal("1.02")


def cost(client: Client, userid: int = 1) -> object:
    response = client.post(
        "/api/solusio", data=FORM.format(userid), content_type="application/x-www-form-urlencoded"
    )
    if response.status_code != 200:
        return response.status_code
    return json.loads(response.content, parse_float=Decimal)["user_token_unit_cost"]


@pytest.fixture
def raw_redis(cache_redis: RedisServer) -> Iterator[redis.Redis]:
    """Another Redis client: a change made by another host or process."""
    with cache_redis.client() as client:
        yield client


@pytest.fixture
def generation_key(answer_cache: AnswerCache) -> str:
    return answer_cache.shared.generation_key


def refuse_shared(cache: AnswerCache, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(customer_id: int) -> object:
        pytest.fail("asked Redis")

    monkeypatch.setattr(cache.shared, "read", refuse)


def local_of(cache: AnswerCache) -> LocalAnswers:
    assert cache.local is not None
    return cache.local


def assert_in_memory(cache: AnswerCache, userid: int = 1) -> None:
    assert local_of(cache).get(userid) is not None, "the answer should be served from memory"


def _change_city_tax_silently() -> None:
    TaxRule.objects.filter(label="City Tax").update(rate=Decimal(10))  # no signal, no bump


def test_a_repeated_answer_is_served_from_memory(
    client: Client,
    gbp_customer: Customer,
    answer_cache: AnswerCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cost(client) == SEED_COST
    refuse_shared(answer_cache, monkeypatch)
    assert cost(client) == SEED_COST


@pytest.mark.parametrize("how", ["set", "delete", "flushdb", "expire"])
def test_a_generation_moved_by_another_process_is_seen_at_once(
    client: Client,
    gbp_customer: Customer,
    answer_cache: AnswerCache,
    raw_redis: redis.Redis,
    generation_key: str,
    how: str,
) -> None:
    assert cost(client) == SEED_COST
    assert_in_memory(answer_cache)
    _change_city_tax_silently()
    if how == "set":
        raw_redis.set(generation_key, b"0.1")
    elif how == "delete":
        raw_redis.delete(generation_key)
    elif how == "flushdb":
        raw_redis.flushdb()
    else:
        raw_redis.pexpire(generation_key, 1)
        time.sleep(0.01)
        assert raw_redis.get(generation_key) is None  # expired, and deleted by this read
    # The change is acknowledged, as bump_generation does, by a second round trip: Redis
    # answers it only after it wrote the invalidation pushes of the change.
    raw_redis.ping()
    assert cost(client) == TEN_PERCENT_CITY_TAX


def test_a_bump_in_this_process_needs_no_push(
    client: Client,
    gbp_customer: Customer,
    answer_cache: AnswerCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cost(client) == SEED_COST
    assert_in_memory(answer_cache)
    # Even if Redis's push were late, this process forgets its generation when it bumps.
    monkeypatch.setattr(local_of(answer_cache).watcher, "_drain", lambda: None)
    _change_city_tax_silently()
    answer_cache.bump_generation()
    assert cost(client) == TEN_PERCENT_CITY_TAX


def test_a_lost_tracking_connection_drops_every_answer(
    client: Client,
    gbp_customer: Customer,
    answer_cache: AnswerCache,
    raw_redis: redis.Redis,
    generation_key: str,
) -> None:
    assert cost(client) == SEED_COST
    assert_in_memory(answer_cache)
    killed = 0
    for info in raw_redis.client_list():
        if "t" in info["flags"]:  # the tracking connections (this process's)
            raw_redis.client_kill_filter(_id=info["id"])
            killed += 1
    assert killed >= 1
    # The push for this bump can no longer arrive: the closed socket must be noticed.
    _change_city_tax_silently()
    raw_redis.set(generation_key, b"0.1")
    assert cost(client) == TEN_PERCENT_CITY_TAX
    assert_in_memory(answer_cache)  # a new tracking connection confirms the generation again
    _change_city_tax_silently_back()
    raw_redis.set(generation_key, b"0.2")
    raw_redis.ping()
    assert cost(client) == SEED_COST


def _change_city_tax_silently_back() -> None:
    TaxRule.objects.filter(label="City Tax").update(rate=Decimal(6))


def test_unknown_customers_are_not_kept_in_memory(
    client: Client, gbp_customer: Customer, answer_cache: AnswerCache
) -> None:
    assert cost(client, 404404) == 404
    assert local_of(answer_cache).get(404404) is None


def test_memory_holds_at_most_the_configured_number_of_answers(
    client: Client, gbp_customer: Customer, make_answer_cache: Callable[..., AnswerCache]
) -> None:
    local = local_of(make_answer_cache(local_size=1))
    for i in range(2, 5):
        Customer.objects.create(id=i, email=f"c{i}@example.com", currency=gbp_customer.currency)
    for userid in (1, 2, 3, 4):
        assert cost(client, userid) != 404
    assert len(local) == 1
    assert cost(client, 3) == Decimal("0.00079")  # still served, from the shared cache


def test_a_new_process_prefills_from_the_shared_cache(
    client: Client,
    gbp_customer: Customer,
    make_answer_cache: Callable[..., AnswerCache],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for i in range(2, 6):
        Customer.objects.create(id=i, email=f"c{i}@example.com", currency=gbp_customer.currency)
    for userid in range(1, 6):
        cost(client, userid)
    cost(client, 999)  # an unknown customer's answer is in Redis but is not copied
    fresh = make_answer_cache()  # a new process: nothing in memory yet
    assert fresh.prefill(batch=2) == 5
    refuse_shared(fresh, monkeypatch)
    assert cost(client, 1) == SEED_COST
    assert cost(client, 5) == Decimal("0.00079")


def test_prefill_skips_answers_of_an_older_generation(
    client: Client,
    gbp_customer: Customer,
    answer_cache: AnswerCache,
    make_answer_cache: Callable[..., AnswerCache],
) -> None:
    cost(client, 1)
    _change_city_tax_silently()
    answer_cache.bump_generation()
    assert make_answer_cache().prefill() == 0
    assert cost(client) == TEN_PERCENT_CITY_TAX


def test_the_first_level_is_off_when_sized_zero(
    client: Client,
    gbp_customer: Customer,
    settings: Any,
    make_answer_cache: Callable[..., AnswerCache],
) -> None:
    settings.PRICING_LOCAL_CACHE_SIZE = 0
    cache = make_answer_cache()
    assert cache.local is None
    assert cost(client) == SEED_COST
    assert cache.start_prefill() is None


class _NoTracking:
    """A connection to a server that does not know CLIENT TRACKING (Redis < 6, a proxy)."""

    class _parser:
        @staticmethod
        def set_invalidation_push_handler(handler: object) -> None:
            pass

    def connect(self) -> None:
        pass

    def send_command(self, *args: object) -> None:
        pass

    def read_response(self) -> object:
        raise redis.ResponseError("ERR unknown command 'CLIENT'")

    def disconnect(self) -> None:
        pass


def test_a_server_without_tracking_turns_the_first_level_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    local = LocalAnswers(GenerationWatcher(_NoTracking, "k"), size=10)
    local.put(1, (b"1", None, b"{}"))
    assert local.get(1) is None
    assert local.disabled
    assert "cannot track keys" in caplog.text
    local.put(2, (b"1", None, b"{}"))
    assert len(local) == 0


def test_a_broken_tracking_connection_is_not_trusted(
    client: Client,
    gbp_customer: Customer,
    answer_cache: AnswerCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cost(client) == SEED_COST
    local = local_of(answer_cache)

    def broken() -> None:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(local.watcher, "_drain", broken)
    assert local.get(1) is not None  # a dead connection is replaced at once...
    monkeypatch.setattr(local.watcher, "_connect", broken)
    assert local.get(1) is None  # ...and when that fails, nothing is trusted
    assert cost(client) == SEED_COST  # through the shared cache


@pytest.fixture
def server_key(answer_cache: AnswerCache) -> str:
    assert isinstance(answer_cache.shared, RedisShared)
    return answer_cache.shared.server_key


def _reconnect_tracking(raw_redis: redis.Redis) -> None:
    for info in raw_redis.client_list():
        if "t" in info["flags"]:
            raw_redis.client_kill_filter(_id=info["id"])


def test_a_restarted_redis_moves_the_generation_on(
    client: Client,
    gbp_customer: Customer,
    raw_redis: redis.Redis,
    generation_key: str,
    server_key: str,
) -> None:
    """Redis restored from its files may have lost a bump: its new run id says so."""
    _reconnect_tracking(raw_redis)
    assert cost(client) == SEED_COST
    assert raw_redis.get(server_key) == raw_redis.info("server")["run_id"].encode()
    # Redis "restarted" from an older file: another run id was recorded, and the change
    # below lost its bump with the rest of the last second's writes.
    raw_redis.set(server_key, "an-earlier-redis")
    _change_city_tax_silently()
    _reconnect_tracking(raw_redis)
    assert cost(client) == TEN_PERCENT_CITY_TAX
    assert raw_redis.get(server_key) == raw_redis.info("server")["run_id"].encode()


def test_a_reconnect_to_the_same_redis_keeps_the_generation(
    client: Client,
    gbp_customer: Customer,
    answer_cache: AnswerCache,
    raw_redis: redis.Redis,
    generation_key: str,
) -> None:
    assert cost(client) == SEED_COST
    before = raw_redis.get(generation_key)
    _reconnect_tracking(raw_redis)
    assert cost(client) == SEED_COST
    assert_in_memory(answer_cache)
    assert raw_redis.get(generation_key) == before


def test_a_redis_that_refuses_info_skips_the_restart_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class RefusesInfo:
        sent: list[tuple[object, ...]] = []

        def send_command(self, *args: object) -> None:
            self.sent.append(args)

        def read_response(self) -> object:
            if self.sent[-1][0] == "INFO":
                raise redis.ResponseError("unknown command 'INFO'")
            return [None, b"%d.1" % committed]  # no run id kept; the database's generation

    committed = committed_generation()
    check = RestartCheck("gen", "server")
    conn = RefusesInfo()
    check(conn)  # no exception: the tracking connection stays usable
    check(conn)
    reads = [("INFO", "server"), ("MGET", "server", "gen")]
    assert conn.sent == reads + reads  # nothing written
    assert caplog.text.count("restart check off") == 1
