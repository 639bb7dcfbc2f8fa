"""GetTokenPricing answers, served from the cache.

Invalidation is by generation: every cached answer is stored with the pricing generation
it was computed under, and any change to what feeds pricing (currencies, discounts, tax
rules, pricing settings, customers) bumps the generation once its transaction commits.
The generation and the answer are read in one round trip (get_many). Because a request
reads the generation before it reads the database, an answer computed from data that a
concurrent change is replacing is stored under the old generation and never served after
the bump: no stale window, no per-customer bookkeeping.

In front of the shared cache each process keeps the answers it served (pricing/localcache.py),
valid while Redis's client-side tracking confirms their generation is still current, so a
repeated answer costs no round trip at all.
"""

import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from django.utils import timezone
from django.utils.connection import ConnectionProxy
from redis.exceptions import ResponseError

from bridge import jsonnum, metrics
from pricing.localcache import GenerationWatcher, LocalAnswers
from pricing.selectors import ReferenceData, reference_data, token_pricing

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
    """Invalidate every cached answer. Call after the change has committed.

    Returns once every web process can see the change: other processes learn of it from
    the invalidation Redis pushes to their tracking connections (pricing/localcache.py).
    Redis writes those pushes in the same turn of its event loop as the reply to the bump,
    but may write the reply first; a second round trip is answered only in a later turn,
    after the pushes were written, so a request that starts after this returns finds its
    process's push waiting.
    """
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # the key is missing: any new value invalidates everything
        cache.set(GENERATION_KEY, _new_generation(), timeout=None)
    finally:
        # This process need not wait for its push.
        _forget_local_generation()
    if local_answers() is not None:
        cache.get(GENERATION_KEY)


# The reference data (currencies, discounts, tax rules, settings) of the last generation
# this process computed an answer under. Right after a change every customer's answer is
# recomputed, and with this each costs one query instead of four. Loaded after the
# generation was read, so it is at least as new as the generation it is kept for.
_reference: tuple[int, ReferenceData] | None = None


def _reference_for(generation: int | None) -> ReferenceData | None:
    global _reference
    if generation is None:  # no cache to say when it changes: read the tables each time
        return None
    kept = _reference
    if kept is not None and kept[0] == generation:
        return kept[1]
    data = reference_data()
    _reference = (generation, data)
    return data


def _render(customer_id: int, generation: int | None = None) -> tuple[bytes, float | None]:
    """The answer from the database, and the epoch second it stops being true (when one
    of the customer's discounts starts or ends), if any."""
    now = timezone.now()
    pricing = token_pricing(customer_id, now, _reference_for(generation))
    if pricing is None:
        return NOT_FOUND, None
    deadline = pricing.changes_at.timestamp() if pricing.changes_at is not None else None
    return jsonnum.dumps(pricing.as_response()).encode(), deadline


_redis = threading.local()


def _backend() -> Any:
    return caches[DEFAULT_CACHE_ALIAS] if isinstance(cache, ConnectionProxy) else cache


# The first-level cache of this process, one per cache configuration. Django gives each
# thread its own backend object, so threads find theirs through a thread-local memo.
_local_lock = threading.Lock()
_local_by_config: dict[tuple[Any, ...], LocalAnswers | None] = {}
_local_memo = threading.local()


def _tracking_connection_factory(backend: RedisCache) -> Any:
    import redis

    lib: Any = backend._cache
    options = {k: v for k, v in lib._pool_options.items() if k != "parser_class"}
    pool = redis.ConnectionPool.from_url(lib._servers[0], **{**options, "protocol": 3})
    return lambda: pool.connection_class(**pool.connection_kwargs)


def local_answers() -> LocalAnswers | None:
    """The first-level cache for the configured backend: None when it is not Redis or
    PRICING_LOCAL_CACHE_SIZE is 0."""
    backend = _backend()
    memo = _local_memo
    pid = os.getpid()
    if getattr(memo, "backend", None) is backend and memo.pid == pid:
        answers: LocalAnswers | None = memo.answers
        return answers
    answers = None
    if type(backend) is RedisCache and settings.PRICING_LOCAL_CACHE_SIZE > 0:
        lib: Any = backend._cache
        generation_key = backend.make_and_validate_key(GENERATION_KEY)
        config = (tuple(lib._servers), generation_key, pid)
        with _local_lock:
            if config not in _local_by_config:
                watcher = GenerationWatcher(_tracking_connection_factory(backend), generation_key)
                watcher.on_connect = _RestartCheck(
                    generation_key, backend.make_and_validate_key(_SERVER_KEY)
                )
                _local_by_config[config] = LocalAnswers(watcher, settings.PRICING_LOCAL_CACHE_SIZE)
            answers = _local_by_config[config]
    memo.backend, memo.pid, memo.answers = backend, pid, answers
    return answers


_SERVER_KEY = "pricing:redis-run-id"  # outside the generation key's tracked prefix


class _RestartCheck:
    """On each new tracking connection: has Redis restarted since the generation was
    last confirmed? If so, move the generation on.

    A Redis restored from its append-only file or a snapshot may have lost the last
    second's writes, a bump among them: the change would be committed in PostgreSQL and
    its answers still served. Redis's run id changes with every start; the id last seen
    is kept beside the generation, and a different one means any bump may have been lost,
    so every answer is recomputed once. Several processes reconnecting at once
    may each bump: harmless.
    """

    def __init__(self, generation_key: str, server_key: str) -> None:
        self.generation_key = generation_key
        self.server_key = server_key
        self.warned = False

    def __call__(self, conn: Any) -> None:
        conn.send_command("INFO", "server")
        try:
            info = conn.read_response()
        except ResponseError as exc:
            # INFO renamed or refused (a hardened Redis, a proxy): without a run id there
            # is nothing to compare, and failing here would reconnect on every request.
            if not self.warned:
                self.warned = True
                logger.warning("pricing cache: no Redis run id (%s); restart check off", exc)
            return
        text = info.decode() if isinstance(info, bytes) else str(info)
        run_id = next(
            (
                line.split(":", 1)[1].strip()
                for line in text.splitlines()
                if line.startswith("run_id:")
            ),
            "",
        )
        conn.send_command("GET", self.server_key)
        seen = conn.read_response()
        if not run_id or (seen is not None and seen.decode() == run_id):
            return
        if seen is not None:
            # Not when no id was kept: an empty Redis (started without its files, flushed)
            # has no generation either, and a new one is made when it is first read.
            logger.info("Redis restarted since the pricing generation was confirmed; moving it on")
            conn.send_command("SET", self.generation_key, _new_generation())
            conn.read_response()
        conn.send_command("SET", self.server_key, run_id)
        conn.read_response()


def _forget_local_generation() -> None:
    with _local_lock:
        pid = os.getpid()
        for (_, _, owner), answers in _local_by_config.items():
            if answers is not None and owner == pid:
                answers.watcher.forget()


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
    backend = _backend()
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
    local = local_answers()
    if local is not None:
        body = local.get(customer_id)
        if body is not None:
            metrics.pricing_cache("local")
            return body
    key = _answer_key(customer_id)
    try:
        found = _get_many([GENERATION_KEY, key])
        generation = found.get(GENERATION_KEY)
        if generation is None:
            generation = current_generation()
    except Exception:
        logger.warning("pricing cache unavailable; answering from the database", exc_info=True)
        metrics.pricing_cache("unavailable")
        return _render(customer_id)[0]
    entry = found.get(key)
    if entry is not None:
        entry_generation, deadline, body = entry
        # The deadline is checked here rather than left to the cache's TTL so that a
        # discount starts or ends at its exact second, whatever the cache's clock says.
        if entry_generation == generation and (deadline is None or time.time() < deadline):
            body = bytes(body)
            metrics.pricing_cache("shared")
            if local is not None and body != NOT_FOUND:
                local.put(customer_id, (generation, deadline, body))
            return body
    metrics.pricing_cache("miss")
    body, deadline = _render(customer_id, generation)
    if local is not None and body != NOT_FOUND:
        local.put(customer_id, (generation, deadline, body))
    ttl = settings.PRICING_CACHE_TTL
    if deadline is not None:
        ttl = max(1, min(ttl, int(deadline - time.time()) + 1))
    try:
        cache.set(key, (generation, deadline, body), timeout=ttl)
    except Exception:
        logger.warning("pricing cache unavailable; answer not cached", exc_info=True)
    return body


def prefill_local_answers(batch: int = 1000) -> int:
    """Copy the shared cache's current answers into this process's first level.

    A new web process (a deploy, a max_requests recycle) would otherwise pay a Redis round
    trip for each customer's first call. Answers of another generation, past their
    deadline, or for unknown customers are skipped. Returns how many were copied.
    """
    local = local_answers()
    if local is None:
        return 0
    generation = local.watcher.current()
    if generation is None:
        return 0
    backend: Any = _backend()
    lib: Any = backend._cache
    client = lib.get_client()
    loads = lib._serializer.loads
    prefix = backend.make_and_validate_key(_ANSWER_KEY.format(""))
    copied = 0
    keys: list[bytes] = []

    def copy(keys: list[bytes]) -> int:
        now = time.time()
        n = 0
        for raw_key, value in zip(keys, client.mget(keys), strict=True):
            if value is None:
                continue
            entry_generation, deadline, body = loads(value)
            if entry_generation != generation or body == NOT_FOUND:
                continue
            if deadline is not None and now >= deadline:
                continue
            local.put(int(raw_key[len(prefix) :]), (entry_generation, deadline, bytes(body)))
            n += 1
        return n

    for key in client.scan_iter(match=prefix + "*", count=batch):
        keys.append(key)
        if len(keys) >= batch:
            copied += copy(keys)
            keys = []
            if len(local) >= local.size:
                break
    if keys:
        copied += copy(keys)
    return copied


def start_prefill_local_answers() -> threading.Thread | None:
    """Run prefill_local_answers in the background (a web worker calls it at start)."""
    if not settings.PRICING_LOCAL_CACHE_PREFILL or local_answers() is None:
        return None

    def run() -> None:
        started = time.monotonic()
        try:
            copied = prefill_local_answers()
        except Exception:
            logger.warning("prefilling the per-process pricing cache failed", exc_info=True)
            return
        logger.info(
            "pricing cache: prefilled %d answers in %.1fs", copied, time.monotonic() - started
        )

    thread = threading.Thread(target=run, name="pricing-prefill", daemon=True)
    thread.start()
    return thread
