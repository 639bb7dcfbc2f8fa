"""The per-process copy of pricing answers, trusted only while Redis's client-side tracking
confirms their generation is current, so a repeated answer costs no round trip and a change is
still visible in the next response (docs/architecture.md, docs/performance.md)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger(__name__)

# (generation, deadline epoch seconds or None, body)
Entry = tuple[bytes, float | None, bytes]


class TrackingUnavailable(Exception):
    """The Redis server or the connection cannot do client-side tracking."""


class GenerationWatcher:
    """The current pricing generation, confirmed by Redis's invalidation pushes."""

    def __init__(self, connection_factory: Callable[[], Any], key: str) -> None:
        self._factory = connection_factory
        self._key = key
        self._lock = threading.Lock()
        self._conn: Any = None
        self._value: bytes | None = None
        self.on_change: Callable[[], None] = lambda: None

    def current(self) -> bytes | None:
        """The generation, or None when it is unknown (no key, or Redis unreachable)."""
        with self._lock:
            try:
                if self._conn is None:
                    self._connect()
                else:
                    try:
                        self._drain()
                    except (ConnectionError, OSError, RedisConnectionError):
                        # Closed under us (Redis restarted, the connection killed): connect
                        # again now, so that the restart check runs before this answer.
                        self._reset()
                        self._connect()
                if self._value is None:
                    self._value = self._read()
            except TrackingUnavailable:
                raise
            except Exception:  # noqa: BLE001 - any failure: forget, retry on the next request
                self._reset()
                return None
            return self._value

    def forget(self) -> None:
        """Called after this process changed the generation: read it again next time."""
        with self._lock:
            if self._value is not None:
                self._value = None
                self.on_change()

    def close(self) -> None:
        with self._lock:
            self._reset()

    def _connect(self) -> None:
        conn = self._factory()
        conn.connect()  # HELLO 3: a RESP2-only server fails here, and is retried later
        try:
            # read_response(push_request=True) returns what this handler returns: the
            # message (the parser exists once connected: HELLO may have replaced it).
            conn._parser.set_invalidation_push_handler(lambda message: message)
            conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self._key)
            conn.read_response()
        except Exception as exc:  # a server or proxy without RESP3 tracking
            conn.disconnect()
            raise TrackingUnavailable(str(exc)) from exc
        self._conn = conn
        self._value = None

    def _drain(self) -> None:
        conn = self._conn
        while conn.can_read(timeout=0):
            message = conn.read_response(push_request=True)
            if not (isinstance(message, list) and message and message[0] == b"invalidate"):
                raise ConnectionError(f"unexpected message on the tracking connection: {message!r}")
            # Any invalidation of the prefix (a bump, a delete, a flush: keys = None)
            # means the same thing: the generation we hold is no longer known to be current.
            if self._value is not None:
                self._value = None
                self.on_change()

    def _read(self) -> bytes | None:
        # A push that arrives before this reply was caused by a write executed before
        # this GET, whose effect the reply already shows: redis-py drops it, correctly.
        self._conn.send_command("GET", self._key)
        raw: bytes | None = self._conn.read_response()
        return raw

    def _reset(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # it is being thrown away anyway
                self._conn.disconnect()
        self._conn = None
        self._value = None


class LocalAnswers:
    """Answers this process has served, keyed by customer id."""

    def __init__(self, watcher: GenerationWatcher, size: int) -> None:
        self.watcher = watcher
        self.size = size
        self.disabled = False
        self._answers: dict[int, Entry] = {}
        watcher.on_change = self._answers.clear

    def get(self, customer_id: int) -> bytes | None:
        if self.disabled:
            return None
        try:
            generation = self.watcher.current()
        except TrackingUnavailable as exc:
            logger.warning("per-process pricing cache off: Redis cannot track keys (%s)", exc)
            self.disabled = True
            self._answers.clear()
            return None
        if generation is None:
            return None
        entry = self._answers.get(customer_id)
        if entry is None or entry[0] != generation:
            return None
        deadline = entry[1]
        if deadline is not None and time.time() >= deadline:
            self._answers.pop(customer_id, None)
            return None
        return entry[2]

    def put(self, customer_id: int, entry: Entry) -> None:
        if self.disabled:
            return
        if len(self._answers) < self.size or customer_id in self._answers:
            self._answers[customer_id] = entry

    def __len__(self) -> int:
        return len(self._answers)
