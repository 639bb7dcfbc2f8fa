"""When and how long the client waits before sending a failed request again."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from bridge.backoff import Backoff


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The client's retries: `bridge.backoff.Backoff(base_delay, max_delay, jitter)` between
    attempts. A 429's Retry-After replaces the backoff, capped at `max_retry_after` so one
    bad header cannot park a worker for hours.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    jitter: float = 0.5
    # False: a 429 is raised at once instead of slept through (the caller has a queue that
    # honours Retry-After without holding a worker thread for it).
    wait_on_rate_limit: bool = True
    # False: a write (not GET) that may still be running in SolusIO (its answer timed out,
    # or a proxy answered 504) is raised at once instead of sent again right away, so the
    # caller's next write cannot overtake it (the caller retries it later, in order).
    retry_unfinished_writes: bool = True

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        return Backoff(self.base_delay, self.max_delay, self.jitter).delay(retry_number, rng)

    def retry_after(self, seconds: float) -> float:
        return max(0.0, min(seconds, self.max_retry_after))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
