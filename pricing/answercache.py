"""The GetTokenPricing answer cache: one object per process that owns its Redis client,
its per-process copy (pricing/localcache.py) and its tracking connection, so tests and
tools can build their own; docs/performance.md explains the design and its guarantees."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import F
from redis.exceptions import ResponseError

from bridge import metrics
from pricing.localcache import Entry, GenerationWatcher, LocalAnswers
from pricing.models import PricingGeneration

logger = logging.getLogger(__name__)

# Cached for unknown customers, so a flood of bad ids does not reach the database.
NOT_FOUND = b""

# The answer for a customer, and the epoch second it stops being true (None: never), from
# the database; given the generation it is computed under (None: no cache in front).
Render = Callable[[int, bytes | None], tuple[bytes, float | None]]


class PricingCacheRefused(Exception):
    """Redis answers but refused to drop the pricing generation: a change made now could
    not be made visible, so it is not made (the transaction rolls back)."""


# PostgreSQL: the generation is a sequence (migration pricing 0003), and a change under
# way holds a shared advisory lock until its transaction ends. Shared, so changes never
# wait for one another (nor deadlock with the rows they lock in another order, as a locked
# counter row would make them); a publisher's exclusive try fails while any is held.
_SEQUENCE = "pricing_generation_seq"
_CHANGE_LOCK = 0x7072696369_6E67  # "pricing"


class _ChangeUnderWay(Exception):
    pass


def committed_generation() -> int:
    """The pricing generation in the database (changes under way included)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT last_value FROM {_SEQUENCE}")  # noqa: S608 - a constant
            return int(cursor.fetchone()[0])
    value = PricingGeneration.objects.filter(pk=1).values_list("value", flat=True).first()
    return value or 0


def bump_committed_generation() -> None:
    """Move the database's generation on, and mark a change under way until the caller's
    transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock_shared(%s), nextval(%s)", [_CHANGE_LOCK, _SEQUENCE]
            )
        return
    if not PricingGeneration.objects.filter(pk=1).update(value=F("value") + 1):
        PricingGeneration.objects.get_or_create(pk=1)
        PricingGeneration.objects.filter(pk=1).update(value=F("value") + 1)


def _locked_generation() -> int:
    """The database's generation, with no change under way until the caller's transaction
    ends; _ChangeUnderWay at once if one is."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_CHANGE_LOCK])
            if not cursor.fetchone()[0]:
                raise _ChangeUnderWay
    # SQLite: one writer at a time; a change's bump and rows commit together.
    return committed_generation()


def _token(value: int) -> bytes:
    # The database's generation, and the moment it was published: after Redis lost the
    # key (evicted, flushed, restarted, restored) the same generation gets a new token, so
    # answers stored before are not trusted again.
    return b"%d.%d" % (value, time.time_ns())


def _token_generation(token: bytes) -> int:
    return int(token.split(b".", 1)[0])


class _RateLimitedLog:
    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.last = -every

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            logger.warning(message, *args)


def _encode(entry: Entry) -> bytes:
    generation, deadline, body = entry
    return b"%s|%s|%s" % (generation, b"" if deadline is None else repr(deadline).encode(), body)


def _decode(raw: bytes) -> Entry:
    generation, deadline, body = raw.split(b"|", 2)
    return generation, float(deadline) if deadline else None, body


class RedisShared:
    """The shared level in Redis, through a client of this object's own."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.generation_key = f"{prefix}pricing:generation"
        self.server_key = f"{prefix}pricing:redis-run-id"  # outside the tracked prefix
        self.answer_prefix = f"{prefix}pricing:answer:"
        self.check = RestartCheck(self.generation_key, self.server_key)
        self.pool = redis.ConnectionPool.from_url(url, redis_connect_func=self._on_connect)
        # redis.Redis checks a connection out of the pool and back for every command (a
        # lock and an extra non-blocking read): each thread keeps one connection instead.
        self._threads = threading.local()

    def client(self) -> Any:  # redis.Redis, whose replies mypy cannot narrow to bytes
        client: redis.Redis | None = getattr(self._threads, "client", None)
        if client is None:
            client = redis.Redis(connection_pool=self.pool, single_connection_client=True)
            self._threads.client = client
        return client

    def _on_connect(self, conn: Any) -> None:
        conn.on_connect()
        self.check(conn)

    def tracking_connection(self) -> Any:
        """A new RESP3 connection to the same server (not from the pool)."""
        pool = redis.ConnectionPool.from_url(
            self.url, protocol=3, redis_connect_func=self._on_connect
        )
        return pool.connection_class(**pool.connection_kwargs)

    def answer_key(self, customer_id: int) -> str:
        return f"{self.answer_prefix}{customer_id}"

    def read(self, customer_id: int) -> tuple[bytes | None, Entry | None]:
        generation, raw = self.client().mget([self.generation_key, self.answer_key(customer_id)])
        return generation, None if raw is None else _decode(raw)

    def publish(self, token: bytes) -> bytes:
        """Set the generation unless someone did first; the one in force."""
        client = self.client()
        if client.set(self.generation_key, token, nx=True):
            return token
        # SET NX GET would save this round trip, but only from Redis 7 (tracking: 6).
        current: bytes | None = client.get(self.generation_key)
        return token if current is None else current

    def forget_generation(self) -> None:
        self.client().delete(self.generation_key)

    def write(self, customer_id: int, entry: Entry, ttl: int) -> None:
        self.client().set(self.answer_key(customer_id), _encode(entry), ex=ttl)

    def scan(self, batch: int) -> Iterator[tuple[int, Entry]]:
        client = self.client()
        keys: list[bytes] = []
        start = len(self.answer_prefix)

        def fetch(keys: list[bytes]) -> Iterator[tuple[int, Entry]]:
            for key, raw in zip(keys, client.mget(keys), strict=True):
                if raw is not None:
                    yield int(key[start:]), _decode(raw)

        for key in client.scan_iter(match=self.answer_prefix + "*", count=batch):
            keys.append(key)
            if len(keys) >= batch:
                yield from fetch(keys)
                keys = []
        if keys:
            yield from fetch(keys)

    def close(self) -> None:
        client = getattr(self._threads, "client", None)
        if client is not None:
            client.close()
        self.pool.disconnect()


class DjangoShared:
    """The shared level in Django's default cache: the embedded run's file cache, shared
    by its web, worker and beat processes (public cache API only)."""

    generation_key = "pricing:generation"

    def __init__(self) -> None:
        self.cache = caches["default"]

    def read(self, customer_id: int) -> tuple[bytes | None, Entry | None]:
        # No mirror to trust: the generation is read from the database each time (one
        # small query; the embedded run is not where speed matters).
        entry = self.cache.get(f"pricing:answer:{customer_id}")
        return b"%d" % committed_generation(), entry

    def forget_generation(self) -> None:
        pass

    def write(self, customer_id: int, entry: Entry, ttl: int) -> None:
        self.cache.set(f"pricing:answer:{customer_id}", entry, timeout=ttl)

    def close(self) -> None:
        pass


class RestartCheck:
    """On every new connection to Redis: is the generation it holds still to be trusted?

    Not if Redis restarted since it was published (a server restored from its files or an
    older snapshot holds answers and a generation from before changes it never saw), nor
    if the database's generation moved past it (a change made while Redis was down). Then
    the generation is dropped before the connection is used, so nothing cached before is
    served: the next request publishes a new one. Redis's run id changes with every start;
    the id last seen is kept beside the generation.
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
            # INFO renamed or refused (a hardened Redis, a proxy): the database's
            # generation is still compared.
            if not self.warned:
                self.warned = True
                logger.warning("pricing cache: no Redis run id (%s); restart check off", exc)
            info = b""
        text = info.decode() if isinstance(info, bytes) else str(info)
        run_id = next(
            (
                line.split(":", 1)[1].strip()
                for line in text.splitlines()
                if line.startswith("run_id:")
            ),
            "",
        )
        conn.send_command("MGET", self.server_key, self.generation_key)
        seen, token = conn.read_response()
        seen = seen.decode() if seen is not None else None
        restarted = bool(run_id) and seen != run_id
        if token is not None and (restarted or _token_generation(token) != committed_generation()):
            logger.info("pricing cache: Redis restarted or missed a change; generation dropped")
            conn.send_command("DEL", self.generation_key)
            conn.read_response()
        if restarted:
            conn.send_command("SET", self.server_key, run_id)
            with contextlib.suppress(ResponseError):  # full: checked again next connection
                conn.read_response()


class AnswerCache:
    """Cached GetTokenPricing answers, invalidated by generation.

    Every cached answer is stored with the pricing generation it was computed under, and
    any change to what feeds pricing bumps the generation once its transaction commits.
    The generation and the answer are read in one round trip. Because a request reads the
    generation before it reads the database, an answer computed from data that a
    concurrent change is replacing is stored under the old generation and never served
    after the bump. In front of Redis each process keeps the answers it served (`local`),
    valid while Redis's client-side tracking confirms their generation is still current.
    """

    def __init__(
        self,
        render: Render,
        *,
        redis_url: str = "",
        key_prefix: str = "",
        local_size: int = 0,
        ttl: int = 3600,
    ) -> None:
        self.render = render
        self.ttl = ttl
        self._log = _RateLimitedLog()
        self.pid = os.getpid()
        self.local: LocalAnswers | None = None
        self.shared: RedisShared | DjangoShared
        if redis_url:
            self.shared = RedisShared(redis_url, f"{key_prefix}:" if key_prefix else "")
            if local_size > 0:
                watcher = GenerationWatcher(
                    self.shared.tracking_connection, self.shared.generation_key
                )
                self.local = LocalAnswers(watcher, local_size)
        else:
            self.shared = DjangoShared()

    @classmethod
    def from_settings(cls, render: Render, **overrides: Any) -> AnswerCache:
        options: dict[str, Any] = {
            "redis_url": settings.REDIS_URL,
            "key_prefix": settings.CACHE_KEY_PREFIX,
            "local_size": settings.PRICING_LOCAL_CACHE_SIZE,
            "ttl": settings.PRICING_CACHE_TTL,
        }
        return cls(render, **{**options, **overrides})

    def close(self) -> None:
        if self.local is not None:
            self.local.watcher.close()
        self.shared.close()

    def answer(self, customer_id: int) -> bytes:
        """The GetTokenPricing JSON body for a customer, or NOT_FOUND.

        A cache outage degrades to answering from the database, never to an error.
        """
        local = self.local
        if local is not None:
            body = local.get(customer_id)
            if body is not None:
                metrics.pricing_cache("local")
                return body
        try:
            generation, entry = self.shared.read(customer_id)
            if generation is None:
                generation = self._publish()
        except Exception as exc:  # noqa: BLE001 - any cache failure: answer from the database
            self._log.warning("pricing cache unavailable (%r); answering from the database", exc)
            metrics.pricing_cache("unavailable")
            return self.render(customer_id, None)[0]
        if generation is None:  # a change is not confirmed yet: nothing cached is trusted
            metrics.pricing_cache("unconfirmed")
            return self.render(customer_id, None)[0]
        if entry is not None:
            entry_generation, deadline, body = entry
            # The deadline is checked here rather than left to the cache's TTL so that a
            # discount starts or ends at its exact second, whatever the cache's clock says.
            if entry_generation == generation and (deadline is None or time.time() < deadline):
                metrics.pricing_cache("shared")
                if local is not None and body != NOT_FOUND:
                    local.put(customer_id, entry)
                return body
        metrics.pricing_cache("miss")
        body, deadline = self.render(customer_id, generation)
        entry = (generation, deadline, body)
        if local is not None and body != NOT_FOUND:
            local.put(customer_id, entry)
        ttl = self.ttl
        if deadline is not None:
            ttl = max(1, min(ttl, int(deadline - time.time()) + 1))
        try:
            self.shared.write(customer_id, entry, ttl)
        except Exception as exc:  # noqa: BLE001 - the answer is served all the same
            self._log.warning("pricing cache unavailable (%r); answer not cached", exc)
        return body

    def _publish(self) -> bytes | None:
        """Mirror the database's generation into Redis, if no change is under way.

        Holding the change lock exclusively, so that no change can begin between reading
        the generation and publishing it: a change holds it (shared) from its bump to its
        commit, and then this fails at once and the request bypasses the cache. Never inside a
        transaction, whose view of the row may be its own uncommitted change.
        """
        if connection.in_atomic_block or not isinstance(self.shared, RedisShared):
            return None
        try:
            with transaction.atomic():
                token = _token(_locked_generation())
                return self.shared.publish(token)
        except _ChangeUnderWay:
            return None  # bypass until the change is confirmed
        except DatabaseError as exc:
            self._log.warning("pricing cache: generation not published (%r); bypassed", exc)
            return None
        except redis.RedisError as exc:
            self._log.warning("pricing cache: generation not published (%s); bypassed", exc)
            return None

    def begin_change(self) -> None:
        """A change to what feeds pricing is being made, in the caller's transaction.

        Bumps the database's generation (marking a change under way until the transaction
        ends) and drops the generation in Redis, so that until the change is confirmed nothing
        cached is served. If Redis answers but refuses, the change must not happen:
        PricingCacheRefused (it rolls the transaction back). If Redis cannot be reached,
        nothing is served from it either, and once it is back every connection compares
        its generation with the database's (RestartCheck).
        """
        bump_committed_generation()
        if self.local is not None:
            self.local.watcher.forget()
        try:
            self.shared.forget_generation()
        except ResponseError as exc:
            raise PricingCacheRefused(f"the pricing cache refused the change: {exc}") from exc
        except redis.RedisError as exc:
            logger.warning("pricing cache unreachable during a change (%s)", exc)

    def bump_generation(self) -> None:
        """Confirm the changes of a committed transaction (begin_change was called in it).

        Drops the generation again (another request may have published one while the
        change was being written, outside a transaction) and publishes the new one.
        Returns once every web process can see the change: other processes learn of it
        from the invalidation Redis pushes to their tracking connections. Redis writes
        those pushes in the same turn of its event loop as the reply to the write, but may
        write the reply first; a second round trip is answered only in a later turn, after
        the pushes were written, so a request that starts after this returns finds its
        process's push waiting. A failure leaves the generation absent: bypassed.
        """
        if self.local is not None:  # this process need not wait for its push
            self.local.watcher.forget()
        try:
            self.shared.forget_generation()
        except redis.RedisError as exc:
            logger.warning("pricing cache: generation not dropped after a change (%s)", exc)
            return
        self._publish()
        if self.local is not None and isinstance(self.shared, RedisShared):
            with contextlib.suppress(redis.RedisError):
                self.shared.client().ping()

    def prefill(self, batch: int = 1000) -> int:
        """Copy the shared cache's current answers into this process's copy.

        A new web process (a deploy, a max_requests recycle) would otherwise pay a Redis
        round trip for each customer's first call. Answers of another generation, past
        their deadline, or for unknown customers are skipped. Returns how many were copied.
        """
        local = self.local
        if local is None or not isinstance(self.shared, RedisShared):
            return 0
        generation = local.watcher.current()
        if generation is None:
            return 0
        now = time.time()
        copied = 0
        for customer_id, entry in self.shared.scan(batch):
            if len(local) >= local.size:
                break
            entry_generation, deadline, body = entry
            if entry_generation != generation or body == NOT_FOUND:
                continue
            if deadline is not None and now >= deadline:
                continue
            local.put(customer_id, entry)
            copied += 1
        return copied

    def start_prefill(self) -> threading.Thread | None:
        """Run prefill in the background (a web worker calls it at start)."""
        if not settings.PRICING_LOCAL_CACHE_PREFILL or self.local is None:
            return None

        def run() -> None:
            started = time.monotonic()
            try:
                copied = self.prefill()
            except Exception:
                logger.warning("prefilling the per-process pricing cache failed", exc_info=True)
                return
            finally:
                connections.close_all()  # this thread's (the restart check reads the database)
            logger.info(
                "pricing cache: prefilled %d answers in %.1fs", copied, time.monotonic() - started
            )

        thread = threading.Thread(target=run, name="pricing-prefill", daemon=True)
        thread.start()
        return thread


# The process's cache: built on first use, and again in a forked child (its connections
# and its copy of the answers belong to the parent).
_installed: AnswerCache | None = None
_install_lock = threading.Lock()


def answer_cache(render: Render) -> AnswerCache:
    global _installed
    cache = _installed
    if cache is not None and cache.pid == os.getpid():
        return cache
    with _install_lock:
        if _installed is None or _installed.pid != os.getpid():
            _installed = AnswerCache.from_settings(render)
        return _installed


@contextlib.contextmanager
def use_answer_cache(cache: AnswerCache) -> Iterator[AnswerCache]:
    """Serve with `cache` inside the block (tests, tools), then with the previous one."""
    global _installed
    with _install_lock:
        previous, _installed = _installed, cache
    try:
        yield cache
    finally:
        with _install_lock:
            _installed = previous
