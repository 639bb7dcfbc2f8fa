"""Logging of requests answered 503 because the database is down. In an outage every request
fails the same way, so each failure is one line and the traceback comes with a summary at
most once per interval (a traceback per request was 17,000 lines in 15 s)."""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

SUMMARY_EVERY = 60.0  # seconds

log = logging.getLogger("bridge.outage")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class OutageLog:
    """Counts database failures per process; thread-safe (gunicorn threads)."""

    def __init__(
        self,
        logger: logging.Logger = log,
        every: float = SUMMARY_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every = every
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._summarised_at: float | None = None

    def failed(self, where: str, exc: BaseException) -> None:
        """`where` answered 503 because of `exc`: one line, and the summary when it is due."""
        now = self.clock()
        with self._lock:
            self._counts[where] += 1
            due = self._summarised_at is None or now - self._summarised_at >= self.every
            if due:
                counts, self._counts = self._counts, Counter()
                since, self._summarised_at = self._summarised_at, now
        self.logger.warning("%s: 503, database unavailable (%s)", where, _one_line(exc))
        if due:
            window = "" if since is None else f" in the last {now - since:.0f} s"
            per_place = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
            self.logger.error(
                "database unavailable: %d request(s) answered 503%s (%s); next summary in "
                "%.0f s at the earliest",
                sum(counts.values()),
                window,
                per_place,
                self.every,
                exc_info=exc,
            )


database_unavailable = OutageLog()


class SkipUnavailable(logging.Filter):
    """For django.request: a 503 was logged by `database_unavailable` already (or, for
    /healthz, is its answer), so Django's own "Service Unavailable: /path" line is a repeat."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 503
