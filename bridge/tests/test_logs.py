"""A request id follows a change from the web request into the Celery task that delivers
it, on every log line; LOG_FORMAT=json writes one JSON object per line; Sentry is opt-in."""

import io
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import signals
from django.db import connection
from django.test import Client

from bridge.celery import app
from bridge.logs import TASK_HEADER, JsonFormatter, RequestIdFilter, request_id
from bridge.testing import celery_worker_command
from pricing.models import Currency
from pricing.tests.api_helpers import staff_client
from users.models import Customer
from users.tasks import deliver_customers

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_each_request_gets_an_id_and_a_proxys_plain_id_is_kept() -> None:
    client = Client()
    mine = client.get("/admin/login/")[("X-Request-ID")]
    assert len(mine) == 32
    assert client.get("/admin/login/")["X-Request-ID"] != mine
    kept = client.get("/admin/login/", HTTP_X_REQUEST_ID="edge-42.a")
    assert kept["X-Request-ID"] == "edge-42.a"
    forged = client.get("/admin/login/", HTTP_X_REQUEST_ID='x"}\n{"level": "ERROR')
    assert len(forged["X-Request-ID"]) == 32  # replaced, not written into the logs
    assert request_id.get() is None  # nothing left behind for the next request


def json_lines(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    for record in records:
        handler.handle(record)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_logs_are_one_object_per_line_with_the_request_id() -> None:
    logger = logging.getLogger("bridge.tests")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        failed = logger.makeRecord("x", logging.ERROR, "f", 1, "failed %s", ("it",), sys.exc_info())
    token = request_id.set("req-1")
    try:
        (first,) = json_lines([failed])
    finally:
        request_id.reset(token)
    (second,) = json_lines([logger.makeRecord("x", logging.INFO, "f", 1, 'said "hi"', (), None)])
    assert first["message"] == "failed it"
    assert (first["level"], first["request_id"]) == ("ERROR", "req-1")
    assert "ValueError: bad\nvalue" in first["exception"]
    assert (second["message"], second["request_id"]) == ('said "hi"', "-")
    assert first["time"].endswith("+00:00")


def create_customer(*, request_id: str) -> None:
    """Through the staff API, as a web request with the proxy's `X-Request-ID`."""
    created = staff_client(Customer).post(
        "/api/v1/customers/",
        {"email": "rid@example.com", "currency": "USD"},
        format="json",
        HTTP_X_REQUEST_ID=request_id,
    )
    assert created.status_code == 201, created.content


@pytest.fixture
def sync_queue(settings: Any) -> Iterator[str]:
    """The sync's tasks wait in a queue of this test's own, on the real broker."""
    settings.SOLUSIO_SYNC_QUEUE = name = f"test-logs-{uuid.uuid4().hex}"
    yield name
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(name)


@pytest.mark.django_db(transaction=True)  # the change commits inside the request
def test_the_request_id_follows_a_customer_change_into_its_delivery_task(
    usd: Currency, sync_queue: str
) -> None:
    create_customer(request_id="change-7")
    with app.connection_for_read() as conn:
        message = conn.SimpleQueue(sync_queue).get(timeout=5)
        message.ack()
    assert message.headers["task"] == deliver_customers.name
    assert message.headers[TASK_HEADER] == "change-7"

    # The worker's side: the task runs with the id it was sent with, and forgets it after.
    seen: list[str | None] = []

    def record(**_: Any) -> None:
        seen.append(request_id.get())

    signals.task_prerun.connect(record)
    try:
        deliver_customers.apply(([],), headers={TASK_HEADER: message.headers[TASK_HEADER]})
        deliver_customers.apply(([],))  # from beat: an id of its own
    finally:
        signals.task_prerun.disconnect(record)
    assert seen[0] == "change-7"
    assert seen[1] not in (None, "change-7")
    assert request_id.get() is None


def test_sentry_is_off_by_default_and_on_with_a_dsn() -> None:
    probe = (
        "import django, sentry_sdk; django.setup(); "
        "print(sentry_sdk.get_client().is_active(), sentry_sdk.get_client().options['dsn'])"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bridge.settings"}
    env.pop("SENTRY_DSN", None)

    def run(**extra: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()

    assert run() == "False None"
    dsn = "https://public@sentry.example.invalid/1"
    assert run(SENTRY_DSN=dsn) == f"True {dsn}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_logs_the_delivery_in_json_under_the_requests_id(
    usd: Currency, sync_queue: str, settings: Any
) -> None:
    settings.SOLUSIO_API_URL = ""  # the delivery waits, and says so in the worker's log
    create_customer(request_id="change-8")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridge.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SOLUSIO_API_URL": "",
        "SOLUSIO_SYNC_QUEUE": sync_queue,
        "LOG_FORMAT": "json",
    }
    worker = subprocess.Popen(
        celery_worker_command(sync_queue), cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    lines: list[dict[str, Any]] = []
    deadline = threading.Timer(60, worker.terminate)  # a worker that never logs it fails
    deadline.start()
    try:
        assert worker.stderr is not None
        for line in worker.stderr:  # ends when the worker is stopped below
            if line.startswith("{"):
                lines.append(json.loads(line))
            if any("changes wait" in entry["message"] for entry in lines):
                break
    finally:
        deadline.cancel()
        worker.terminate()
        worker.wait(10)
    waiting = [entry for entry in lines if "changes wait" in entry["message"]]
    assert waiting, lines
    assert waiting[0]["request_id"] == "change-8"
    assert waiting[0]["logger"] == "users.sync"
