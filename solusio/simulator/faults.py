"""Fault injection and the call log of the simulator: a random rate per kind (noise, for soak
runs and demos), or an exact queue, "fail the next N matching calls with X", for tests."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from solusio.redact import redact

# error: answer `status` (500 by default) without doing the request; rate_limit: 429 with
# `Retry-After`; slow: wait `delay`, then answer normally; drop: hang up without doing the
# request; drop_after: do it, then hang up (a lost answer); truncate: do it and send half the
# JSON body.
KINDS = ("error", "rate_limit", "slow", "drop", "drop_after", "truncate")
# Kinds that answer (or hang up) instead of doing the request.
BEFORE = frozenset({"error", "rate_limit", "drop"})


@dataclass
class Fault:
    kind: str
    status: int = 500
    retry_after: int = 1
    delay: float = 0.5
    # Which calls it hits: method (any if empty) and a glob on the path below /api/v1.
    method: str = ""
    path: str = ""
    count: int = 1

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return not self.path or fnmatchcase(path, self.path)


@dataclass
class FaultConfig:
    rates: dict[str, float] = field(default_factory=dict)
    error_status: int = 500
    retry_after: int = 1
    slow_delay: float = 0.5
    seed: int = 0


class FaultInjector:
    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultConfig(), replace=True)

    def configure(self, config: FaultConfig, *, replace: bool = False) -> None:
        unknown = set(config.rates) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}; known: {list(KINDS)}")
        if sum(config.rates.values()) > 1 or any(r < 0 for r in config.rates.values()):
            raise ValueError("fault rates must be between 0 and 1 and sum to at most 1")
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            if replace:
                self.queue: list[Fault] = []

    def enqueue(self, fault: Fault) -> None:
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; known: {list(KINDS)}")
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self.queue.append(fault)

    def clear(self) -> None:
        self.configure(FaultConfig(), replace=True)

    def pick(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self.queue):
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count == 0:
                        del self.queue[i]
                    return fault
            config = self.config
            if not config.rates:
                return None
            roll = self._rng.random()
            for kind in KINDS:
                roll -= config.rates.get(kind, 0.0)
                if roll < 0:
                    return Fault(
                        kind,
                        status=config.error_status,
                        retry_after=config.retry_after,
                        delay=config.slow_delay,
                    )
            return None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {**asdict(self.config), "next": [asdict(f) for f in self.queue]}


class CallLog:
    """What the simulator was asked, in order, with passwords and tokens redacted."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._seq = 0

    def start(self, method: str, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            self._seq += 1
            entry = {
                "seq": self._seq,
                "method": method,
                "path": path,
                "query": dict(query),
                "body": redact(body),
                "status": None,
                "fault": None,
                "ts": now,
                "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                + f".{int(now % 1 * 1e6):06d}Z",
                "duration_ms": None,
            }
            self._entries.append(entry)
        return entry

    @staticmethod
    def finish(entry: dict[str, Any], status: int | None, fault: str | None) -> None:
        entry["status"] = status
        entry["fault"] = fault
        entry["duration_ms"] = round((time.time() - entry["ts"]) * 1000, 3)

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries if e["seq"] > since]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
