"""Test helpers: a SolusIO simulator in a thread on its own port, a control handle, and the
`solusio_sim` / `solusio_settings` pytest fixtures other suites import in their conftest."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import pytest
import requests

from solusio.client import SolusIOClient
from solusio.retry import RetryPolicy
from solusio.simulator import DEFAULT_TOKEN, SeedConfig, Simulator, start_in_thread

# Retries that keep a test fast but still wait a measurable, growing time.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.02, max_delay=0.2, max_retry_after=2)


class SimulatorControl:
    """The simulator's /_sim control API, over HTTP (works for a subprocess simulator too)."""

    def __init__(self, root: str, simulator: Simulator | None = None) -> None:
        self.root = root.rstrip("/")
        # The in-process simulator, when there is one (direct access for white-box tests).
        self.simulator = simulator
        self._http = requests.Session()

    def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self._http.request(
            method, f"{self.root}/_sim/{path}", json=body, params=params, timeout=10
        )
        if response.status_code >= 400:
            raise AssertionError(f"simulator control {method} {path}: {response.text}")
        return response.json()["data"] if response.content else None

    def calls(
        self, *, method: str | None = None, path: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        """The call log, oldest first, optionally only one method and/or path."""
        entries = self._call("GET", "calls", since=since)
        return [
            e
            for e in entries
            if (method is None or e["method"] == method) and (path is None or e["path"] == path)
        ]

    def clear_calls(self) -> None:
        self._call("DELETE", "calls")

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        *,
        method: str = "",
        path: str = "",
        status: int = 500,
        retry_after: int = 1,
        delay: float = 0.5,
    ) -> None:
        """Make the next `count` matching API calls fail with `kind` (see faults.KINDS)."""
        fault = {
            "kind": kind,
            "count": count,
            "method": method,
            "path": path,
            "status": status,
            "retry_after": retry_after,
            "delay": delay,
        }
        self._call("POST", "faults", {"next": [fault]})

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Random fault rates and their parameters, e.g. rates={"error": 0.2}."""
        return self._call("POST", "faults", settings)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def reset(self) -> None:
        self._call("POST", "reset")

    def seed(self, **config: Any) -> dict[str, Any]:
        """Re-seed: seed, users, servers, now (ISO), tokens_mismatch_rate, named_users."""
        return self._call("POST", "seed", config)

    def add_server(self, **server: Any) -> dict[str, Any]:
        """A hand-made server: user_id, plan_id, created_at, deleted_at, resizes, additional_ip,
        status (default started), backups (paid backups enabled, default false)."""
        return self._call("POST", "servers", server)


class SimulatorInfo(NamedTuple):
    url: str  # the API base, what SOLUSIO_API_URL would be
    token: str
    control: SimulatorControl


@contextmanager
def running_simulator(
    *,
    token: str = DEFAULT_TOKEN,
    seed: int = 1,
    users: int = 10,
    servers: int | None = None,
    now: int | None = None,
) -> Iterator[SimulatorInfo]:
    """A simulator serving on a free port in a background thread, stopped on exit."""
    sim = Simulator(token=token, seed=SeedConfig(seed=seed, users=users, servers=servers, now=now))
    running = start_in_thread(sim)
    control = SimulatorControl(running.root, sim)
    try:
        yield SimulatorInfo(running.url, running.token, control)
    finally:
        control._http.close()
        running.stop()


def fast_client(info: SimulatorInfo, **overrides: Any) -> SolusIOClient:
    """A client for `info` with test-sized timeouts and backoff."""
    options: dict[str, Any] = {
        "verify_tls": False,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "retry": FAST_RETRY,
    }
    options.update(overrides)
    return SolusIOClient(info.url, info.token, **options)


@pytest.fixture
def solusio_sim() -> Iterator[SimulatorInfo]:
    with running_simulator() as info:
        yield info


@pytest.fixture
def solusio_settings(solusio_sim: SimulatorInfo, settings: Any) -> SimulatorInfo:
    """`solusio_sim`, with the bridge's settings pointing at it."""
    settings.SOLUSIO_API_URL = solusio_sim.url
    settings.SOLUSIO_API_TOKEN = solusio_sim.token
    settings.SOLUSIO_VERIFY_TLS = False
    return solusio_sim
