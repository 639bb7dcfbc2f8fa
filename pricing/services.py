"""GetTokenPricing answers, served from the cache.

Invalidation is by generation: every cached answer is stored with the pricing generation
it was computed under, and any change to what feeds pricing (currencies, discounts, tax
rules, pricing settings, customers) bumps the generation once its transaction commits.
The generation and the answer are read in one round trip (get_many). Because a request
reads the generation before it reads the database, an answer computed from data that a
concurrent change is replacing is stored under the old generation and never served after
the bump: no stale window, no per-customer bookkeeping.
"""

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from django.utils import timezone
from django.utils.connection import ConnectionProxy

from bridge import jsonnum
from pricing.selectors import token_pricing

logger = logging.getLogger(__name__)

GENERATION_KEY = "pricing:generation"
_ANSWER_KEY = "pricing:answer:{}"
# Cached for unknown customers, so a flood of bad ids does not reach the database.
NOT_FOUND = b""


def _answer_key(customer_id: int) -> str:
    return _ANSWER_KEY.format(customer_id)


def _new_generation() -> int:
    # Time-based, so that after the generation key is evicted or Redis is flushed a fresh
    # generation never equals one that surviving answers were stored under.
    return time.time_ns()


def current_generation() -> int:
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        cache.add(GENERATION_KEY, _new_generation(), timeout=None)
        generation = cache.get(GENERATION_KEY)
    return int(generation)


def bump_generation() -> None:
    """Invalidate every cached answer. Call after the change has committed."""
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # the key is missing: any new value invalidates everything
        cache.set(GENERATION_KEY, _new_generation(), timeout=None)


def _render(customer_id: int) -> tuple[bytes, float | None]:
    """The answer from the database, and the epoch second it stops being true (when one
    of the customer's discounts starts or ends), if any."""
    now = timezone.now()
    pricing = token_pricing(customer_id, now)
    if pricing is None:
        return NOT_FOUND, None
    deadline = pricing.changes_at.timestamp() if pricing.changes_at is not None else None
    return jsonnum.dumps(pricing.as_response()).encode(), deadline


_redis = threading.local()


def _get_many(keys: list[str]) -> dict[str, Any]:
    """`cache.get_many(keys)` for the hot path: one MGET, the same keys and values.

    Django's RedisCache builds a new redis.Redis client for every operation, which with
    redis-py 8 costs more CPU than the round trip itself, and each command also checks a
    connection out of the pool and back (a lock and an extra non-blocking read). Here each
    thread keeps a client holding one connection of the backend's own pool (so the URL,
    database, credentials and parser are Django's), keys are made by the backend and
    values decoded by its serializer. Any other cache backend goes through get_many.
    docs/performance.md has the measurements.
    """
    backend = caches[DEFAULT_CACHE_ALIAS] if isinstance(cache, ConnectionProxy) else cache
    if type(backend) is not RedisCache:
        return backend.get_many(keys)
    # The RedisCacheClient: its pools, client class and serializer (private, hence Any).
    lib: Any = backend._cache
    pool = lib._get_connection_pool(False)
    client = getattr(_redis, "client", None)
    if client is None or client.connection_pool is not pool:
        if client is not None:
            client.close()  # its connection goes back to its pool
            _redis.client = None
        client = lib._client(connection_pool=pool, single_connection_client=True)
        _redis.client = client
    values = client.mget([backend.make_and_validate_key(key) for key in keys])
    loads = lib._serializer.loads
    return {key: loads(value) for key, value in zip(keys, values, strict=True) if value is not None}


def pricing_answer(customer_id: int) -> bytes:
    """The GetTokenPricing JSON body for a customer, or NOT_FOUND.

    A cache outage degrades to answering from the database, never to an error.
    """
    key = _answer_key(customer_id)
    try:
        found = _get_many([GENERATION_KEY, key])
        generation = found.get(GENERATION_KEY)
        if generation is None:
            generation = current_generation()
    except Exception:
        logger.warning("pricing cache unavailable; answering from the database", exc_info=True)
        return _render(customer_id)[0]
    entry = found.get(key)
    if entry is not None:
        entry_generation, deadline, body = entry
        # The deadline is checked here rather than left to the cache's TTL so that a
        # discount starts or ends at its exact second, whatever the cache's clock says.
        if entry_generation == generation and (deadline is None or time.time() < deadline):
            return bytes(body)
    body, deadline = _render(customer_id)
    ttl = settings.PRICING_CACHE_TTL
    if deadline is not None:
        ttl = max(1, min(ttl, int(deadline - time.time()) + 1))
    try:
        cache.set(key, (generation, deadline, body), timeout=ttl)
    except Exception:
        logger.warning("pricing cache unavailable; answer not cached", exc_info=True)
    return body
