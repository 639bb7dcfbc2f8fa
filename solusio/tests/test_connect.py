"""solusio.connect: every client is built from the settings; who closes it."""

import threading
from typing import Any

import pytest

from solusio.client import SolusIOClient
from solusio.connect import given_or_own, solusio_client, thread_client
from solusio.testing import SimulatorInfo


@pytest.fixture
def configured(solusio_settings: SimulatorInfo, settings: Any) -> SimulatorInfo:
    settings.SOLUSIO_CONNECT_TIMEOUT = 1.25
    settings.SOLUSIO_READ_TIMEOUT = 6.5
    settings.SOLUSIO_RETRY_MAX_ATTEMPTS = 4
    settings.SOLUSIO_RETRY_BASE_DELAY = 0.02
    settings.SOLUSIO_RETRY_MAX_DELAY = 0.5
    return solusio_settings


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[SolusIOClient]:
    seen: list[SolusIOClient] = []
    close = SolusIOClient.close

    def closing(client: SolusIOClient) -> None:
        seen.append(client)
        close(client)

    monkeypatch.setattr(SolusIOClient, "close", closing)
    return seen


def test_solusio_client_applies_the_settings_and_closes_on_exit(
    configured: SimulatorInfo, closed: list[SolusIOClient]
) -> None:
    with solusio_client(max_attempts=2, wait_on_rate_limit=False) as client:
        assert client.get_user(1).id == 1
        assert client.base_url == configured.url
        assert client.timeout == (1.25, 6.5)
        retry = client.retry
        assert (retry.max_attempts, retry.base_delay, retry.max_delay) == (2, 0.02, 0.5)
        assert (retry.wait_on_rate_limit, retry.retry_unfinished_writes) == (False, True)
        assert closed == []
    assert closed == [client]


def test_solusio_client_closes_when_the_caller_fails(
    configured: SimulatorInfo, closed: list[SolusIOClient]
) -> None:
    with pytest.raises(RuntimeError), solusio_client() as client:
        raise RuntimeError
    assert closed == [client]


def test_given_or_own_leaves_a_given_client_open(
    configured: SimulatorInfo, closed: list[SolusIOClient]
) -> None:
    mine = SolusIOClient(configured.url, configured.token, verify_tls=False)
    with given_or_own(mine) as client:
        assert client is mine
    assert closed == []
    with given_or_own(None) as client:
        assert client.retry.max_attempts == 4
    assert closed == [client]


def test_a_thread_keeps_its_client_until_the_settings_change(
    configured: SimulatorInfo, closed: list[SolusIOClient], settings: Any
) -> None:
    first = thread_client()
    assert thread_client() is first
    assert first.timeout == (1.25, 6.5)
    assert thread_client(max_attempts=1) is not first  # other options: another client
    others: list[SolusIOClient] = []
    worker = threading.Thread(target=lambda: others.append(thread_client()))
    worker.start()
    worker.join()
    assert others[0] is not first  # a client is not shared between threads
    others[0].close()
    settings.SOLUSIO_API_TOKEN = "another-token"
    assert thread_client() is not first
    assert first in closed
