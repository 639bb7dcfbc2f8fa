"""The bridge's SolusIO client, built from Django settings in one place.

`solusio_client()` is how code talks to SolusIO: a client with the configured timeouts and
retry policy, its HTTP session closed on exit. The user sync's worker threads keep one such
client each (`thread_client`) so deliveries share keep-alive connections instead of
opening one per customer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

from django.conf import settings

from solusio.client import SolusIOClient
from solusio.retry import RetryPolicy

_local = threading.local()


def is_configured() -> bool:
    return bool(settings.SOLUSIO_API_URL and settings.SOLUSIO_API_TOKEN)


@dataclass(frozen=True)
class _Options:
    """Everything a client is built from (a thread's client is rebuilt when it changes)."""

    url: str
    token: str
    verify_tls: bool
    connect_timeout: float
    read_timeout: float
    retry: RetryPolicy
    per_page: int

    @classmethod
    def from_settings(
        cls, max_attempts: int | None, wait_on_rate_limit: bool, retry_unfinished_writes: bool
    ) -> _Options:
        return cls(
            url=settings.SOLUSIO_API_URL,
            token=settings.SOLUSIO_API_TOKEN,
            verify_tls=settings.SOLUSIO_VERIFY_TLS,
            connect_timeout=settings.SOLUSIO_CONNECT_TIMEOUT,
            read_timeout=settings.SOLUSIO_READ_TIMEOUT,
            per_page=settings.SOLUSIO_PER_PAGE,
            retry=RetryPolicy(
                max_attempts=max_attempts or settings.SOLUSIO_RETRY_MAX_ATTEMPTS,
                base_delay=settings.SOLUSIO_RETRY_BASE_DELAY,
                max_delay=settings.SOLUSIO_RETRY_MAX_DELAY,
                wait_on_rate_limit=wait_on_rate_limit,
                retry_unfinished_writes=retry_unfinished_writes,
                max_retry_after=max(settings.SOLUSIO_RETRY_MAX_DELAY, 1.0),
            ),
        )

    def build(self) -> SolusIOClient:
        return SolusIOClient(
            self.url,
            self.token,
            verify_tls=self.verify_tls,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retry=self.retry,
            per_page=self.per_page,
        )


@contextmanager
def solusio_client(
    *,
    max_attempts: int | None = None,
    wait_on_rate_limit: bool = True,
    retry_unfinished_writes: bool = True,
) -> Iterator[SolusIOClient]:
    """A client for the configured SolusIO (ImproperlyConfigured if none), closed on exit.

    `max_attempts` overrides SOLUSIO_RETRY_MAX_ATTEMPTS; `wait_on_rate_limit=False` raises
    a 429 at once (the user sync retries through its outbox, so a worker never sleeps on
    a 429, while a 5xx or a dropped connection is tried again at once);
    `retry_unfinished_writes=False` raises a write that may still be running in SolusIO
    (timed out, 504) at once, so that a later write cannot overtake it.
    """
    client = _Options.from_settings(
        max_attempts, wait_on_rate_limit, retry_unfinished_writes
    ).build()
    try:
        yield client
    finally:
        client.close()


def thread_client(
    *,
    max_attempts: int | None = None,
    wait_on_rate_limit: bool = True,
    retry_unfinished_writes: bool = True,
) -> SolusIOClient:
    """This thread's long-lived client, built as `solusio_client` builds one (same options).

    Only for hot paths that call SolusIO once per item from a pool of worker threads (the
    user sync): a client is not thread-safe, and a fresh one per item would open a
    connection per item. A change of the settings (tests point them at a fresh simulator)
    makes a new client and closes the old."""
    options = _Options.from_settings(max_attempts, wait_on_rate_limit, retry_unfinished_writes)
    clients: dict[_Options, SolusIOClient] = getattr(_local, "clients", None) or {}
    _local.clients = clients
    cached = clients.get(options)
    if cached is not None:
        return cached
    for key, old in list(clients.items()):
        if (key.url, key.token) != (options.url, options.token):
            old.close()
            del clients[key]
    client = clients[options] = options.build()
    return client


def given_or_own(client: SolusIOClient | None) -> AbstractContextManager[SolusIOClient]:
    """`client` when the caller passed one (left open: it is theirs), else a
    `solusio_client()` closed on exit."""
    return nullcontext(client) if client is not None else solusio_client()
