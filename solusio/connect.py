"""The bridge's SolusIO client, built from Django settings and kept per thread.

One client per thread (a client is not thread-safe) reused across tasks, so deliveries
share keep-alive connections instead of opening one per customer. A change of the settings
(tests point them at a fresh simulator) makes a new client.
"""

from __future__ import annotations

import threading

from django.conf import settings

from solusio.client import SolusIOClient
from solusio.retry import RetryPolicy

_local = threading.local()


def _config(
    max_attempts: int | None, wait_on_rate_limit: bool = True, retry_unfinished_writes: bool = True
) -> tuple[object, ...]:
    return (
        settings.SOLUSIO_API_URL,
        settings.SOLUSIO_API_TOKEN,
        settings.SOLUSIO_VERIFY_TLS,
        settings.SOLUSIO_CONNECT_TIMEOUT,
        settings.SOLUSIO_READ_TIMEOUT,
        max_attempts or settings.SOLUSIO_RETRY_MAX_ATTEMPTS,
        settings.SOLUSIO_RETRY_BASE_DELAY,
        settings.SOLUSIO_RETRY_MAX_DELAY,
        wait_on_rate_limit,
        retry_unfinished_writes,
    )


def is_configured() -> bool:
    return bool(settings.SOLUSIO_API_URL and settings.SOLUSIO_API_TOKEN)


def get_client(
    *,
    max_attempts: int | None = None,
    wait_on_rate_limit: bool = True,
    retry_unfinished_writes: bool = True,
) -> SolusIOClient:
    """This thread's client for the configured SolusIO (ImproperlyConfigured if none).

    `max_attempts` overrides SOLUSIO_RETRY_MAX_ATTEMPTS; `wait_on_rate_limit=False` raises
    a 429 at once (the user sync retries through its outbox, so a worker never sleeps on
    a 429, while a 5xx or a dropped connection is tried again at once);
    `retry_unfinished_writes=False` raises a write that may still be running in SolusIO
    (timed out, 504) at once, so that a later write cannot overtake it.
    """
    config = _config(max_attempts, wait_on_rate_limit, retry_unfinished_writes)
    clients: dict[tuple[object, ...], SolusIOClient] = getattr(_local, "clients", None) or {}
    _local.clients = clients
    cached = clients.get(config)
    if cached is not None:
        return cached
    for key, old in list(clients.items()):  # the settings changed (tests): drop the old
        if key[:2] != config[:2]:
            old.close()
            del clients[key]
    client = SolusIOClient(
        settings.SOLUSIO_API_URL,
        settings.SOLUSIO_API_TOKEN,
        verify_tls=settings.SOLUSIO_VERIFY_TLS,
        connect_timeout=settings.SOLUSIO_CONNECT_TIMEOUT,
        read_timeout=settings.SOLUSIO_READ_TIMEOUT,
        retry=RetryPolicy(
            max_attempts=max_attempts or settings.SOLUSIO_RETRY_MAX_ATTEMPTS,
            base_delay=settings.SOLUSIO_RETRY_BASE_DELAY,
            max_delay=settings.SOLUSIO_RETRY_MAX_DELAY,
            wait_on_rate_limit=wait_on_rate_limit,
            retry_unfinished_writes=retry_unfinished_writes,
            max_retry_after=max(settings.SOLUSIO_RETRY_MAX_DELAY, 1.0),
        ),
    )
    clients[config] = client
    return client
