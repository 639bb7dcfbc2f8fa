"""/metrics: who may scrape it, what it reports, and counts summed across processes."""

import http.client
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY

from bridge import metrics
from bridge.celery import app
from bridge.tasks import heartbeat
from bridge.testing import celery_worker_command
from usage.cycle import CloseSummary
from users.models import Customer, SyncRecord, SyncRecordState

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-test-token"
FORM = "token=test-pricing-token&action=GetTokenPricing&userid={}"

FAMILIES = {
    "bridge_pricing_requests",
    "bridge_pricing_request_seconds",
    "bridge_pricing_cache_lookups",
    "bridge_http_responses",
    "bridge_celery_tasks",
    "bridge_close_stage_seconds",
    "bridge_closes",
    "bridge_close_last",
    "bridge_metrics_database_up",
    "bridge_outbox_pending",
    "bridge_outbox_oldest_pending_age_seconds",
    "bridge_outbox_parked",
    "bridge_invoice_emails",
}


def scrape(client: Client, **headers: Any) -> dict[str, dict[tuple[str, tuple], float]]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


def parse(text: str) -> dict[str, dict[tuple[str, tuple], float]]:
    families: dict[str, dict[tuple[str, tuple], float]] = {}
    for family in text_string_to_metric_families(text):
        samples = families.setdefault(family.name, {})
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return families


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@override_settings(METRICS_TOKEN=TOKEN, METRICS_INTERNAL_ONLY=False)
@pytest.mark.django_db
def test_a_token_is_required_and_every_family_is_there(client: Client) -> None:
    refused: list[dict[str, Any]] = [
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong"},
        {"HTTP_AUTHORIZATION": TOKEN},  # no scheme
    ]
    for headers in refused:
        response = client.get("/metrics", **headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"bridge_" not in response.content
    families = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert set(families) >= FAMILIES
    assert families["bridge_metrics_database_up"][("bridge_metrics_database_up", ())] == 1
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


@override_settings(METRICS_TOKEN="", METRICS_INTERNAL_ONLY=False, DEBUG=False)
@pytest.mark.django_db
def test_without_a_token_or_internal_only_metrics_are_refused(client: Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"METRICS_TOKEN" in response.content


@pytest.mark.parametrize(
    ("token", "internal", "warned"), [("", False, True), ("t", False, False), ("", True, False)]
)
def test_check_deploy_warns_when_metrics_have_no_protection(
    token: str, internal: bool, warned: bool
) -> None:
    from bridge.checks import check_bridge_secrets

    with override_settings(METRICS_TOKEN=token, METRICS_INTERNAL_ONLY=internal):
        found = {w.id for w in check_bridge_secrets()}
    assert ("bridge.W008" in found) is warned


@override_settings(METRICS_TOKEN="", METRICS_INTERNAL_ONLY=True)
@pytest.mark.django_db
def test_internal_only_serves_direct_private_requests_not_proxied_ones(client: Client) -> None:
    assert set(scrape(client, REMOTE_ADDR="10.1.2.3")) >= FAMILIES
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    # Through the reverse proxy (it adds X-Forwarded-For), or from a public address: no.
    proxied = client.get("/metrics", REMOTE_ADDR="172.18.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert proxied.status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="1.2.3.4").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_pricing_calls_count_status_latency_and_cache(
    client: Client, gbp_customer: Customer
) -> None:
    answered = value("bridge_pricing_requests_total", status="200", outcome="answered")
    bad_token = value("bridge_pricing_requests_total", status="403", outcome="bad_token")
    latency = value("bridge_pricing_request_seconds_count")
    misses = value("bridge_pricing_cache_lookups_total", result="miss")
    hits = value("bridge_pricing_cache_lookups_total", result="local") + value(
        "bridge_pricing_cache_lookups_total", result="shared"
    )
    client_errors = value("bridge_http_responses_total", status_class="4xx")

    form = "application/x-www-form-urlencoded"
    for _ in range(2):
        response = client.post("/api/solusio", data=FORM.format(gbp_customer.id), content_type=form)
        assert response.status_code == 200
    response = client.post(
        "/api/solusio",
        data=f"token=no&action=GetTokenPricing&userid={gbp_customer.id}",
        content_type=form,
    )
    assert response.status_code == 403

    assert value("bridge_pricing_requests_total", status="200", outcome="answered") == answered + 2
    assert (
        value("bridge_pricing_requests_total", status="403", outcome="bad_token") == bad_token + 1
    )
    assert value("bridge_pricing_request_seconds_count") == latency + 3
    # The first answer is rendered from the database, the second comes from a cache.
    assert value("bridge_pricing_cache_lookups_total", result="miss") == misses + 1
    hits_after = value("bridge_pricing_cache_lookups_total", result="local") + value(
        "bridge_pricing_cache_lookups_total", result="shared"
    )
    assert hits_after == hits + 1
    assert value("bridge_http_responses_total", status_class="4xx") == client_errors + 1


@override_settings(METRICS_TOKEN=TOKEN)
@pytest.mark.django_db
def test_outbox_figures_are_read_from_the_database(client: Client) -> None:
    old, _new, parked = (
        SyncRecord.objects.create(customer_id=n, action="upsert", payload={}) for n in (1, 2, 3)
    )
    SyncRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=1))
    SyncRecord.objects.filter(pk=parked.pk).update(
        state=SyncRecordState.PARKED, created_at=timezone.now() - timedelta(days=3)
    )
    SyncRecord.objects.create(customer_id=4, action="upsert", payload={}, state="done")

    families = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    sync = (("outbox", "user_sync"),)
    assert families["bridge_outbox_pending"][("bridge_outbox_pending", sync)] == 2
    assert families["bridge_outbox_parked"][("bridge_outbox_parked", sync)] == 1
    age = families["bridge_outbox_oldest_pending_age_seconds"][
        ("bridge_outbox_oldest_pending_age_seconds", sync)
    ]
    assert 3600 <= age < 3700
    email = (("outbox", "invoice_email"),)
    assert families["bridge_outbox_pending"][("bridge_outbox_pending", email)] == 0
    emails = families["bridge_invoice_emails"]
    assert emails[("bridge_invoice_emails", (("state", "failed"),))] == 0


def test_celery_task_outcomes_are_counted() -> None:
    before = value("bridge_celery_tasks_total", task="bridge.tasks.heartbeat", outcome="success")
    heartbeat.apply()
    after = value("bridge_celery_tasks_total", task="bridge.tasks.heartbeat", outcome="success")
    assert after == before + 1


def test_a_close_summary_sets_the_close_figures() -> None:
    closes = value("bridge_closes_total")
    builds = value("bridge_close_stage_seconds_count", stage="build")
    summary = CloseSummary(
        period="2026-10", dry_run=False, rows=1234, created=40, issued=38, held=2
    )
    summary.seconds = {"pull": 12.0, "build": 3.5, "issue": 0.7}
    metrics.record_close(summary)
    assert value("bridge_closes_total") == closes + 1
    assert value("bridge_close_stage_seconds_count", stage="build") == builds + 1
    assert value("bridge_close_last", figure="rows") == 1234
    assert value("bridge_close_last", figure="invoices_issued") == 38
    assert value("bridge_close_last", figure="invoices_held") == 2


COUNT = """
import sys
from prometheus_client import Gauge
from bridge import metrics
from bridge.celery import app
for _ in range(int(sys.argv[1])):
    metrics.PRICING_REQUESTS.labels("200", "answered").inc()
metrics.pricing_cache("local")
metrics.CELERY_TASKS.labels("t", "failure").inc()
Gauge("bridge_test_live", "a live gauge", multiprocess_mode="livesum").set(1)
print(metrics.process_identifier())
"""

SCRAPE = """
import os, runpy, sys
from types import SimpleNamespace
import django
django.setup()
from django.test import RequestFactory, override_settings
from bridge import metrics
from bridge.celery import app
config = runpy.run_path("bridge/gunicorn.conf.py")
config["child_exit"](None, SimpleNamespace(pid=int(sys.argv[1])))
request = RequestFactory().get("/metrics", HTTP_AUTHORIZATION="Bearer t")
with override_settings(METRICS_TOKEN="t"):
    sys.stdout.write(metrics.metrics_view(request).content.decode())
"""


def test_two_processes_counts_are_summed(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "bridge.test_settings",
    }

    def run(code: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    first = run(COUNT, "3")
    second = run(COUNT, "4")
    assert first != second
    files = {p.name for p in tmp_path.iterdir()}
    assert f"counter_{first}.db" in files
    assert f"gauge_livesum_{second}.db" in files

    # Gunicorn's child_exit drops an exited worker's live gauges, not its counters.
    families = parse(run(SCRAPE, second.rsplit("-", 1)[1]))
    assert f"gauge_livesum_{second}.db" not in {p.name for p in tmp_path.iterdir()}
    requests = families["bridge_pricing_requests"]
    key = ("bridge_pricing_requests_total", (("outcome", "answered"), ("status", "200")))
    assert requests[key] == 7
    cache = families["bridge_pricing_cache_lookups"]
    assert cache[("bridge_pricing_cache_lookups_total", (("result", "local"),))] == 2
    tasks = families["bridge_celery_tasks"]
    assert tasks[("bridge_celery_tasks_total", (("outcome", "failure"), ("task", "t")))] == 2
    assert "bridge_metrics_database_up" in families


@pytest.mark.slow
def test_a_prefork_workers_task_outcomes_reach_the_metrics_directory(tmp_path: Path) -> None:
    queue = f"test-{uuid.uuid4().hex}"
    command = celery_worker_command(queue)
    command[command.index("solo")] = "prefork"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridge.test_settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    worker = subprocess.Popen(
        [*command, "--concurrency", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(4):
            app.send_task("bridge.tasks.heartbeat", queue=queue)

        def successes() -> float:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(tmp_path))
            labels = {"task": "bridge.tasks.heartbeat", "outcome": "success"}
            return registry.get_sample_value("bridge_celery_tasks_total", labels) or 0.0

        deadline = time.monotonic() + 60
        while successes() < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        if successes() != 4:
            worker.terminate()
            pytest.fail(worker.communicate(timeout=10)[0].decode()[-3000:])
    finally:
        worker.terminate()
        worker.wait(timeout=20)


def _request(port: int, method: str, path: str, body: str = "", **headers: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.slow
def test_gunicorn_workers_counts_are_summed_by_a_scrape(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridge.test_settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "METRICS_TOKEN": TOKEN,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "PRICING_LOCAL_CACHE_PREFILL": "0",
        # Wrong tokens are what is counted here, not what the throttle turns into 429s.
        "PRICING_TOKEN_FAILURE_LIMIT": "1000",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "bridge/gunicorn.conf.py", "bridge.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _request(port, "GET", "/ping")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    server.terminate()
                    pytest.fail(server.communicate(timeout=10)[1].decode()[-3000:])
                time.sleep(0.2)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        for _ in range(20):  # a new connection each: either worker may take it
            status, _ = _request(port, "POST", "/api/solusio", "token=no&action=x&userid=1", **form)
            assert status == 403
        status, text = _request(port, "GET", "/metrics", Authorization=f"Bearer {TOKEN}")
        assert status == 200
        families = parse(text)
        key = ("bridge_pricing_requests_total", (("outcome", "bad_token"), ("status", "403")))
        assert families["bridge_pricing_requests"][key] == 20
        classes = families["bridge_http_responses"]
        assert classes[("bridge_http_responses_total", (("status_class", "4xx"),))] == 20
    finally:
        server.terminate()
        server.wait(timeout=20)
