"""Overlap a slow producer with its consumer: iterate in a background thread, ahead.

The cycle close waits on two things in turn: SolusIO rendering the next usage page, and
PostgreSQL storing the last batch. `prefetched` runs the producer (fetching and parsing
pages) in a thread that stays a bounded number of items ahead, so those waits overlap.

The producer must not touch the database (Django's connections are per thread, and a test's
transaction is invisible to another connection): give it HTTP and pure work only. Errors
raised in it come out of the consumer's `next()`, in order; when the consumer stops early
(an exception, a time limit), the producer is told to stop after its current item.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterable[T], *, ahead: int = 2, join_timeout: float = 1.0) -> Iterator[T]:
    """Yield `items` while a daemon thread produces up to `ahead` more in the background."""
    buffer: queue.Queue[Any] = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Failed(exc))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        # The producer may be inside a slow call; it exits after it (a daemon thread never
        # keeps the process alive), so the consumer does not wait for it long.
        thread.join(timeout=join_timeout)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
