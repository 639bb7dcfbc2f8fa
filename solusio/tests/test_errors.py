"""Each kind of failure becomes its typed exception, with status, message and field errors."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from solusio.client import SolusIOClient
from solusio.errors import (
    ClientError,
    InvalidResponse,
    NotFound,
    RateLimited,
    ServerError,
    SolusIOError,
    TransportError,
    Unauthorized,
    ValidationFailed,
)
from solusio.retry import RetryPolicy
from solusio.testing import SimulatorInfo, fast_client, running_simulator

NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, max_retry_after=0.0)


def test_wrong_token_is_unauthorized_and_not_retried(sim: SimulatorInfo) -> None:
    client = SolusIOClient(sim.url, "wrong-token", retry=NO_WAIT)
    with client, pytest.raises(Unauthorized) as caught:
        client.get_user(1)
    assert caught.value.status == 401
    assert caught.value.message == "Unauthenticated."
    assert len(sim.control.calls()) == 1


def test_missing_object_is_not_found(client: SolusIOClient, sim: SimulatorInfo) -> None:
    with pytest.raises(NotFound) as caught:
        client.get_user(4040)
    assert caught.value.status == 404
    assert "GET /users/4040" in str(caught.value)
    assert len(sim.control.calls()) == 1


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"email": "customer1@example.test"}, "email", "already been taken"),
        ({"email": "a@example.test", "status": "banned"}, "status", "selected status is invalid"),
        ({"password": "password-1"}, "email", "field is required"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"email": "b@example.test", "limit_group_id": 99}, "limit_group_id", "invalid"),
    ],
)
def test_validation_errors_carry_solusio_field_messages(
    client: SolusIOClient, sim: SimulatorInfo, body: dict, field: str, text: str
) -> None:
    payload = {"password": "password-1", **body}
    with pytest.raises(ValidationFailed) as caught:
        client._request("POST", "/users", json=payload)
    assert caught.value.status == 422
    assert caught.value.message == "The given data was invalid."
    assert any(text in m for m in caught.value.errors[field]), caught.value.errors
    assert len(sim.control.calls()) == 1  # never retried


def test_email_taken_is_recognised(client: SolusIOClient) -> None:
    with pytest.raises(ValidationFailed) as caught:
        client.create_user(email="CUSTOMER2@example.test", password="password-1")
    assert caught.value.email_taken


def test_exhausted_rate_limit_is_rate_limited(sim: SimulatorInfo) -> None:
    sim.control.fail_next("rate_limit", count=3, retry_after=0)
    with fast_client(sim, retry=NO_WAIT) as client, pytest.raises(RateLimited) as caught:
        client.get_user(1)
    assert (caught.value.status, caught.value.retry_after) == (429, 0)
    assert len(sim.control.calls()) == 3


@pytest.mark.parametrize("status", [500, 502, 503])
def test_exhausted_server_errors_are_server_errors(sim: SimulatorInfo, status: int) -> None:
    sim.control.fail_next("error", count=3, status=status)
    with fast_client(sim, retry=NO_WAIT) as client, pytest.raises(ServerError) as caught:
        client.list_plans()
    assert caught.value.status == status
    assert caught.value.retryable


def test_refused_connection_is_a_transport_error() -> None:
    with running_simulator() as info:
        url, token = info.url, info.token
    # The simulator is stopped: its port now refuses connections.
    client = SolusIOClient(url, token, retry=NO_WAIT)
    with client, pytest.raises(TransportError) as caught:
        client.get_user(1)
    assert caught.value.status is None
    assert not caught.value.timeout


def test_read_timeout_is_a_transport_error(sim: SimulatorInfo) -> None:
    sim.control.fail_next("slow", count=3, delay=0.6)
    client = fast_client(sim, retry=NO_WAIT, read_timeout=0.15)
    with client, pytest.raises(TransportError) as caught:
        client.get_user(1)
    assert caught.value.timeout


def test_dropped_connection_is_a_transport_error(sim: SimulatorInfo) -> None:
    sim.control.fail_next("drop", count=3)
    with fast_client(sim, retry=NO_WAIT) as client, pytest.raises(TransportError):
        client.get_user(1)


def test_truncated_json_is_an_invalid_response_and_a_write_is_not_resent(
    client: SolusIOClient, sim: SimulatorInfo
) -> None:
    sim.control.fail_next("truncate", method="PUT")
    with pytest.raises(InvalidResponse, match="not valid JSON"):
        client.set_user_status(2, "locked")
    assert len(sim.control.calls(method="PUT")) == 1
    # The write happened; only the answer was lost.
    assert client.get_user(2).status == "locked"


def test_other_4xx_is_a_client_error(client: SolusIOClient) -> None:
    with pytest.raises(ClientError) as caught:
        client._request("POST", "/plans", json={})
    assert caught.value.status == 405
    assert type(caught.value) is ClientError


class _NotJson(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = (
            (502, b"<html>Bad Gateway</html>") if "fail" in self.path else (200, b"<html>")
        )
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def html_proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotJson)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1"
    server.shutdown()
    server.server_close()


def test_non_json_bodies_are_handled(html_proxy: str) -> None:
    with SolusIOClient(html_proxy, "t", retry=NO_WAIT) as client:
        with pytest.raises(ServerError, match="Bad Gateway"):
            client._request("GET", "/fail")
        with pytest.raises(InvalidResponse, match="not valid JSON"):
            client.get_settings()


def test_every_error_is_a_solusio_error() -> None:
    for kind in (TransportError, InvalidResponse, RateLimited, ServerError, ValidationFailed):
        assert issubclass(kind, SolusIOError)
    err = ValidationFailed(
        "The given data was invalid.",
        status=422,
        errors={"email": ["taken"]},
        method="POST",
        path="/users",
    )
    assert str(err) == "POST /users: HTTP 422: The given data was invalid. email: taken"
