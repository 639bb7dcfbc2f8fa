"""A real Celery worker process runs a task: over Redis, and over the embedded broker."""

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.filebased import FileBasedCache

from bridge.celery import app
from bridge.tasks import HEARTBEAT_KEY
from bridge.testing import celery_worker_command

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def start_worker(queue: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        celery_worker_command(queue),
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def stop() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_worker_runs_a_task_sent_through_redis(stop: list) -> None:
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    queue = f"test-{uuid.uuid4().hex}"
    cache.delete(HEARTBEAT_KEY)
    worker = start_worker(queue, {"DJANGO_SETTINGS_MODULE": "bridge.test_settings"})
    stop.append(worker)
    app.send_task("bridge.tasks.heartbeat", queue=queue)
    ok = wait_for(lambda: cache.get(HEARTBEAT_KEY) is not None)
    if not ok:
        worker.terminate()
        pytest.fail(worker.communicate(timeout=10)[0].decode()[-3000:])


def test_a_worker_runs_a_task_on_the_embedded_broker_without_redis(
    stop: list, tmp_path: Path
) -> None:
    env = {
        "DJANGO_SETTINGS_MODULE": "bridge.settings",
        "REDIS_URL": "",  # empty = the embedded filesystem broker and file cache
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "BRIDGE_VAR_DIR": str(tmp_path),
    }
    queue = "embedded"
    worker = start_worker(queue, env)
    stop.append(worker)
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir(exist_ok=True)
    sender = Celery(
        broker="filesystem://",
        broker_transport_options={
            "data_folder_in": str(broker_dir),
            "data_folder_out": str(broker_dir),
            "control_folder": str(broker_dir / "control"),
        },
    )
    sender.send_task("bridge.tasks.heartbeat", queue=queue)
    file_cache = FileBasedCache(str(tmp_path / "cache"), {})
    ok = wait_for(lambda: file_cache.get(HEARTBEAT_KEY) is not None)
    if not ok:
        worker.terminate()
        pytest.fail(worker.communicate(timeout=10)[0].decode()[-3000:])
