"""The outbox with real Celery workers, a private Redis and the simulator over HTTP:
Redis stopped while customers are edited, a worker killed mid-delivery, duplicate tasks.

Each test starts its own redis-server (never the shared one) and workers that listen on a
queue of their own, against the test database.
"""

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connection

from bridge.celery import app
from bridge.testing import celery_worker_command
from pricing.models import Currency
from solusio.testing import SimulatorInfo
from users import services, sync
from users.models import Customer, SolusioAccount, SyncRecord, SyncRecordState
from users.tasks import deliver_customer, deliver_customers
from users.tests.conftest import solusio_user

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        assert wait_for(lambda: _pings(client), 10), "private redis did not start"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    # This process sends its tasks there too (Celery caches its broker connections).
    old = app.conf.broker_url
    app.conf.broker_url = server.url
    app._pool = None
    app.amqp._producer_pool = None
    yield server
    app.conf.broker_url = old
    app._pool = None
    app.amqp._producer_pool = None
    server.stop()


@pytest.fixture
def workers(
    sim: SimulatorInfo, private_redis: PrivateRedis, settings: Any
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    queue = f"test-sync-{uuid.uuid4().hex}"
    settings.SOLUSIO_SYNC_QUEUE = queue
    settings.SOLUSIO_SYNC_SWEEP_AFTER = 0.0
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridge.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": private_redis.url,
        "SOLUSIO_API_URL": sim.url,
        "SOLUSIO_API_TOKEN": sim.token,
        "SOLUSIO_VERIFY_TLS": "0",
        "SOLUSIO_RETRY_MAX_ATTEMPTS": "2",
        "SOLUSIO_RETRY_BASE_DELAY": "0.05",
        "SOLUSIO_RETRY_MAX_DELAY": "0.2",
        "SOLUSIO_SYNC_RETRY_BASE": "0.2",
        "SOLUSIO_SYNC_RETRY_MAX": "1",
        "SOLUSIO_SYNC_QUEUE": queue,
    }
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            celery_worker_command(queue),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def settled() -> bool:
    return not SyncRecord.objects.exclude(state=SyncRecordState.DONE).exists()


def test_redis_stopped_while_customers_are_edited_loses_and_repeats_nothing(
    sim: SimulatorInfo, workers: Any, private_redis: PrivateRedis, usd: Currency, settings: Any
) -> None:
    # The whole Redis goes down, as in production: broker and cache.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": private_redis.url,
        }
    }
    workers()
    workers()
    customers = [
        services.create_customer(email=f"c{i}@example.com", currency=usd) for i in range(6)
    ]
    assert wait_for(settled), "the creates were not delivered"

    private_redis.stop()
    for customer in customers:
        services.change_customer_status(customer_id=customer.pk, status="locked", reason="1")
        services.change_customer_status(customer_id=customer.pk, status="suspended", reason="2")
        services.update_customer(
            customer=Customer.objects.get(pk=customer.pk),
            changes={"email": f"moved{customer.pk}@example.com"},
        )
    assert SyncRecord.objects.filter(state=SyncRecordState.PENDING).count() == 18
    private_redis.start()
    # What beat does every minute; then duplicate tasks for good measure.
    assert wait_for(lambda: sync.sweep() == 6, 10)
    queue = settings.SOLUSIO_SYNC_QUEUE
    for customer in customers:
        for _ in range(3):
            deliver_customer.apply_async((customer.pk,), queue=queue)
    deliver_customers.apply_async(([c.pk for c in customers] * 2,), queue=queue)
    assert wait_for(settled, 60), "the edits were not delivered"

    posts = sim.control.calls(method="POST", path="/users")
    assert len([c for c in posts if c["status"] == 201]) == 6  # one user each, ever
    for customer in customers:
        user_id = SolusioAccount.objects.get(pk=customer.pk).solusio_user_id
        puts = [
            c["body"]
            for c in sim.control.calls(method="PUT", path=f"/users/{user_id}")
            if c["status"] == 200
        ]
        assert [(b["status"], b["email"]) for b in puts] == [
            ("locked", customer.email),
            ("suspended", customer.email),
            ("suspended", f"moved{customer.pk}@example.com"),
        ]


def test_a_worker_killed_mid_delivery_leaves_the_record_for_the_next_one(
    sim: SimulatorInfo, workers: Any, usd: Currency
) -> None:
    first = workers()
    sim.control.fail_next("slow", 1, method="POST", path="/users", delay=2.0)
    customer = services.create_customer(email="slow@example.com", currency=usd)
    assert wait_for(lambda: bool(sim.control.calls(method="POST", path="/users")), 20)
    first.send_signal(signal.SIGKILL)  # SolusIO still makes the user; nobody hears back
    first.wait(10)
    assert wait_for(lambda: solusio_user(sim, customer.pk) is not None, 10)
    assert SyncRecord.objects.get(customer_id=customer.pk).state == SyncRecordState.PENDING

    workers()
    assert wait_for(lambda: sync.sweep() >= 1, 10)
    assert wait_for(settled, 30)

    assert len(sim.control.simulator.state.users) == 1  # type: ignore[union-attr]
    user = solusio_user(sim, customer.pk)
    assert user is not None
    assert SolusioAccount.objects.get(pk=customer.pk).solusio_user_id == user["id"]
