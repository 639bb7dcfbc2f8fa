"""The one backoff policy (client retries, outboxes): capped exponential with the jitter
taken off the top. Attempt n waits between `(1 - jitter) * ceiling(n)` and
`ceiling(n) = min(cap, base * 2**(n - 1))`: never beyond the cap, and with jitter at most one
half no attempt waits less than an earlier one could have (failed together, back apart).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# 2.0**1023 is the largest power of two a float holds; the cap is reached long before.
_MAX_EXPONENT = 1000


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float  # the first wait's ceiling, in seconds
    cap: float  # no wait is longer
    jitter: float = 0.5  # the fraction of each wait that is random

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError(f"backoff base and cap must be >= 0, not {self.base}, {self.cap}")
        if not 0 <= self.jitter <= 0.5:
            # Above one half, attempt n + 1 could wait less than attempt n did.
            raise ValueError(f"backoff jitter must be within [0, 0.5], not {self.jitter}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after the `attempt`-th failure (1-based)."""
        exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
        return min(self.cap, self.base * 2.0**exponent)

    def floor(self, attempt: int) -> float:
        """The shortest wait after the `attempt`-th failure."""
        return self.ceiling(attempt) * (1 - self.jitter)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        floor, ceiling = self.floor(attempt), self.ceiling(attempt)
        # Clamped: rounding must not take it past either bound.
        return max(floor, min(ceiling, floor + (rng or random).random() * (ceiling - floor)))
