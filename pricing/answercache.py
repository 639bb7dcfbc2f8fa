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
from redis.exceptions import ResponseError

from pricing.localcache import Entry, GenerationWatcher, LocalAnswers

logger = logging.getLogger(__name__)

# Cached for unknown customers, so a flood of bad ids does not reach the database.
NOT_FOUND = b""

# The answer for a customer, and the epoch second it stops being true (None: never), from
# the database; given the generation it is computed under (None: no cache in front).
Render = Callable[[int, bytes | None], tuple[bytes, float | None]]


def _new_generation() -> bytes:
    # Time-based, so that after the generation key is evicted or Redis is flushed a fresh
    # generation never equals one that surviving answers were stored under.
    return str(time.time_ns()).encode()


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
        self.pool = redis.ConnectionPool.from_url(url)
        # redis.Redis checks a connection out of the pool and back for every command (a
        # lock and an extra non-blocking read): each thread keeps one connection instead.
        self._threads = threading.local()

    def client(self) -> Any:  # redis.Redis, whose replies mypy cannot narrow to bytes
        client: redis.Redis | None = getattr(self._threads, "client", None)
        if client is None:
            client = redis.Redis(connection_pool=self.pool, single_connection_client=True)
            self._threads.client = client
        return client

    def tracking_connection(self) -> Any:
        """A new RESP3 connection to the same server (not from the pool)."""
        pool = redis.ConnectionPool.from_url(self.url, protocol=3)
        return pool.connection_class(**pool.connection_kwargs)

    def answer_key(self, customer_id: int) -> str:
        return f"{self.answer_prefix}{customer_id}"

    def read(self, customer_id: int) -> tuple[bytes | None, Entry | None]:
        generation, raw = self.client().mget([self.generation_key, self.answer_key(customer_id)])
        return generation, None if raw is None else _decode(raw)

    def generation(self) -> bytes:
        client = self.client()
        client.set(self.generation_key, _new_generation(), nx=True)
        value: bytes = client.get(self.generation_key)
        return value

    def bump(self) -> None:
        self.client().set(self.generation_key, _new_generation())

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
        key = f"pricing:answer:{customer_id}"
        found = self.cache.get_many([self.generation_key, key])
        return found.get(self.generation_key), found.get(key)

    def generation(self) -> bytes:
        self.cache.add(self.generation_key, _new_generation(), timeout=None)
        value: bytes = self.cache.get(self.generation_key)
        return value

    def bump(self) -> None:
        self.cache.set(self.generation_key, _new_generation(), timeout=None)

    def forget_generation(self) -> None:
        self.cache.delete(self.generation_key)

    def write(self, customer_id: int, entry: Entry, ttl: int) -> None:
        self.cache.set(f"pricing:answer:{customer_id}", entry, timeout=ttl)

    def close(self) -> None:
        pass


class RestartCheck:
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
        self.pid = os.getpid()
        self.local: LocalAnswers | None = None
        self.shared: RedisShared | DjangoShared
        if redis_url:
            self.shared = RedisShared(redis_url, f"{key_prefix}:" if key_prefix else "")
            if local_size > 0:
                watcher = GenerationWatcher(
                    self.shared.tracking_connection, self.shared.generation_key
                )
                watcher.on_connect = RestartCheck(
                    self.shared.generation_key, self.shared.server_key
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
                return body
        try:
            generation, entry = self.shared.read(customer_id)
            if generation is None:
                generation = self.shared.generation()
        except Exception:
            logger.warning("pricing cache unavailable; answering from the database", exc_info=True)
            return self.render(customer_id, None)[0]
        if entry is not None:
            entry_generation, deadline, body = entry
            # The deadline is checked here rather than left to the cache's TTL so that a
            # discount starts or ends at its exact second, whatever the cache's clock says.
            if entry_generation == generation and (deadline is None or time.time() < deadline):
                if local is not None and body != NOT_FOUND:
                    local.put(customer_id, entry)
                return body
        body, deadline = self.render(customer_id, generation)
        entry = (generation, deadline, body)
        if local is not None and body != NOT_FOUND:
            local.put(customer_id, entry)
        ttl = self.ttl
        if deadline is not None:
            ttl = max(1, min(ttl, int(deadline - time.time()) + 1))
        try:
            self.shared.write(customer_id, entry, ttl)
        except Exception:
            logger.warning("pricing cache unavailable; answer not cached", exc_info=True)
        return body

    def bump_generation(self) -> None:
        """Invalidate every cached answer. Call after the change has committed.

        Returns once every web process can see the change: other processes learn of it
        from the invalidation Redis pushes to their tracking connections. Redis writes
        those pushes in the same turn of its event loop as the reply to the bump, but may
        write the reply first; a second round trip is answered only in a later turn,
        after the pushes were written, so a request that starts after this returns finds
        its process's push waiting.
        """
        try:
            self.shared.bump()
        finally:
            if self.local is not None:  # this process need not wait for its push
                self.local.watcher.forget()
        if self.local is not None and isinstance(self.shared, RedisShared):
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
