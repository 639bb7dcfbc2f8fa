"""Each pricing test serves through its own answer cache (fresh connections, an empty
per-process copy) on a private Redis, built as the process's would be."""

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pricing.answercache import AnswerCache, use_answer_cache
from pricing.services import render
from pricing.tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def _session_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cache_redis(_session_redis: RedisServer) -> RedisServer:
    """The answer cache's Redis, empty at the start of each test."""
    if _session_redis.process is None or _session_redis.process.poll() is not None:
        _session_redis.start()
    with _session_redis.client() as client:
        client.flushall()
    return _session_redis


@pytest.fixture
def make_answer_cache(cache_redis: RedisServer) -> Iterator[Callable[..., AnswerCache]]:
    """Install a new answer cache, as a new process would build it; `**overrides` replace
    the settings' values (redis_url, local_size, ttl)."""
    with contextlib.ExitStack() as stack:

        def make(**overrides: object) -> AnswerCache:
            cache = AnswerCache.from_settings(render, **{"redis_url": cache_redis.url, **overrides})
            stack.callback(cache.close)
            stack.enter_context(use_answer_cache(cache))
            return cache

        yield make


@pytest.fixture(autouse=True)
def answer_cache(make_answer_cache: Callable[..., AnswerCache]) -> AnswerCache:
    return make_answer_cache()
