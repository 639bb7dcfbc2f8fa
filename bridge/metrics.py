"""Prometheus metrics and /metrics: counted by each process (summed across gunicorn and
Celery processes through PROMETHEUS_MULTIPROC_DIR when it is set), or read from the
database at scrape time; README "Production" → Metrics says how /metrics is protected."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from usage.cycle import CloseSummary

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


# '_' separates the parts of a metric file's name.
_HOST = socket.gethostname().replace("_", "-")


def process_identifier(pid: int | None = None) -> str:
    """The name of a process's metric files: host and pid, because scaled worker containers
    share the directory and each has its own pid 1, 2, ..."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)
    # Set before the first metric is made: each value reads its file name from it.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)


def mark_process_dead(pid: int) -> None:
    """Gunicorn's child_exit: drop the exited worker's live gauges (its counters stay)."""
    if MULTIPROC_DIR:
        multiprocess.mark_process_dead(process_identifier(pid), MULTIPROC_DIR)


# --- Counted by the processes ------------------------------------------------------------
PRICING_REQUESTS = Counter(
    "bridge_pricing_requests",
    "GetTokenPricing requests by HTTP status and outcome.",
    ["status", "outcome"],
)
PRICING_SECONDS = Histogram(
    "bridge_pricing_request_seconds",
    "GetTokenPricing time inside the application (after gunicorn read the request).",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PRICING_CACHE = Counter(
    "bridge_pricing_cache_lookups",
    "Where GetTokenPricing answers came from: local (the process's own memory), shared "
    "(Redis), miss (rendered from the database), unavailable (Redis failed: database), "
    "unconfirmed (a price change not yet confirmed: database).",
    ["result"],
)
HTTP_RESPONSES = Counter(
    "bridge_http_responses", "HTTP responses of every view by status class.", ["status_class"]
)
CELERY_TASKS = Counter(
    "bridge_celery_tasks", "Celery task outcomes by task name.", ["task", "outcome"]
)
CLOSE_STAGE_SECONDS = Histogram(
    "bridge_close_stage_seconds",
    "Wall time of each stage of a cycle close.",
    ["stage"],
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400),
)
CLOSES = Counter("bridge_closes", "Cycle closes completed (dry runs not counted).")
CLOSE_LAST = Gauge(
    "bridge_close_last",
    "Figures of the last completed cycle close: rows pulled, invoices created, updated, "
    "issued, held for review, and when it finished (Unix time).",
    ["figure"],
    multiprocess_mode="mostrecent",
)

_STATUS_OUTCOMES = {
    200: "answered",
    400: "bad_request",
    401: "missing_token",
    403: "bad_token",
    404: "unknown_customer",
    405: "bad_method",
    413: "too_large",
    429: "throttled",
    503: "unavailable",
}
_CACHE_RESULTS = ("local", "shared", "miss", "unavailable", "unconfirmed")
_cache_counters = {result: PRICING_CACHE.labels(result) for result in _CACHE_RESULTS}
_status_classes = {n: HTTP_RESPONSES.labels(f"{n}xx") for n in range(1, 6)}
# `labels()` costs several times an `inc()` (about 6 µs in multi-process mode): look the
# hot path's children up once.
_pricing_counters: dict[int, Any] = {}


def pricing_cache(result: str) -> None:
    """Count one pricing answer by where it came from (one of _CACHE_RESULTS)."""
    _cache_counters[result].inc()


def timed_pricing(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap the GetTokenPricing view: status, outcome and latency of every call."""

    @functools.wraps(view)  # keeps csrf_exempt
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        started = time.perf_counter()
        try:
            response = view(request, *args, **kwargs)
        except Exception:
            PRICING_REQUESTS.labels("500", "error").inc()
            raise
        PRICING_SECONDS.observe(time.perf_counter() - started)
        status = response.status_code
        counter = _pricing_counters.get(status)
        if counter is None:
            counter = PRICING_REQUESTS.labels(str(status), _STATUS_OUTCOMES.get(status, "other"))
            _pricing_counters[status] = counter
        counter.inc()
        return response

    return wrapper


class ResponseClassMiddleware:
    """Counts every response by status class (the 4xx/5xx the hosting company watches)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        counter = _status_classes.get(response.status_code // 100)
        if counter is not None:
            counter.inc()
        return response


def record_close(summary: CloseSummary) -> None:
    """Called at the end of a (non dry-run) close with its summary."""
    for stage, seconds in summary.seconds.items():
        CLOSE_STAGE_SECONDS.labels(stage).observe(seconds)
    CLOSES.inc()
    for figure, value in (
        ("rows", summary.rows),
        ("invoices_created", summary.created),
        ("invoices_updated", summary.updated),
        ("invoices_issued", summary.issued),
        ("invoices_held", summary.held),
        ("finished_timestamp_seconds", time.time()),
    ):
        CLOSE_LAST.labels(figure).set(value)


def _task_name(sender: Any) -> str:
    return str(getattr(sender, "name", None) or "unknown")


def connect_celery_signals() -> None:
    """Count task outcomes in whichever process runs them (the worker's pool processes)."""
    from celery.signals import task_failure, task_retry, task_success

    def on_success(sender: Any = None, **kwargs: Any) -> None:
        CELERY_TASKS.labels(_task_name(sender), "success").inc()

    def on_failure(sender: Any = None, **kwargs: Any) -> None:
        CELERY_TASKS.labels(_task_name(sender), "failure").inc()

    def on_retry(sender: Any = None, **kwargs: Any) -> None:
        CELERY_TASKS.labels(_task_name(sender), "retry").inc()

    task_success.connect(on_success, weak=False, dispatch_uid="bridge.metrics.success")
    task_failure.connect(on_failure, weak=False, dispatch_uid="bridge.metrics.failure")
    task_retry.connect(on_retry, weak=False, dispatch_uid="bridge.metrics.retry")


# --- Computed from the database at scrape time -----------------------------------------
class DatabaseCollector(Collector):
    """Outbox and e-mail figures read when scraped: always right, whichever process
    delivered what (and nothing to lose when a worker is killed)."""

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # else registering it would collect, i.e. query, at import time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "bridge_metrics_database_up", "1 when the database figures below could be read."
        )
        try:
            families = list(_database_families())
        except Exception:  # noqa: BLE001 - an outage must not fail the scrape of the rest
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _database_families() -> Iterator[GaugeMetricFamily]:
    from django.db.models import Count, Min, Q
    from django.utils import timezone

    from bridge.models import DeliveryState
    from usage.models import CreditNoteEmail, InvoiceEmail
    from users.models import SyncRecord, SyncRecordState

    now = timezone.now()
    pending = GaugeMetricFamily(
        "bridge_outbox_pending", "Undelivered outbox records (not parked).", labels=["outbox"]
    )
    oldest = GaugeMetricFamily(
        "bridge_outbox_oldest_pending_age_seconds",
        "Age of the oldest undelivered outbox record (0 when none).",
        labels=["outbox"],
    )
    parked = GaugeMetricFamily(
        "bridge_outbox_parked",
        "Outbox records given up on, waiting for staff (user sync: parked; invoice and "
        "credit note e-mails: failed).",
        labels=["outbox"],
    )
    emails = GaugeMetricFamily(
        "bridge_invoice_emails", "Invoice e-mails pending or failed.", labels=["state"]
    )
    sync, email = SyncRecordState, DeliveryState
    outboxes = (
        ("user_sync", SyncRecord.objects, sync.PENDING, sync.PARKED),
        ("invoice_email", InvoiceEmail.objects, email.PENDING, email.FAILED),
        ("credit_note_email", CreditNoteEmail.objects, email.PENDING, email.FAILED),
    )
    for name, rows, pending_state, parked_state in outboxes:
        figures = rows.filter(state__in=[pending_state, parked_state]).aggregate(
            pending=Count("pk", filter=Q(state=pending_state)),
            parked=Count("pk", filter=Q(state=parked_state)),
            oldest=Min("created_at", filter=Q(state=pending_state)),
        )
        pending.add_metric([name], figures["pending"])
        parked.add_metric([name], figures["parked"])
        age = (now - figures["oldest"]).total_seconds() if figures["oldest"] else 0.0
        oldest.add_metric([name], max(0.0, age))
        if name == "invoice_email":
            emails.add_metric(["pending"], figures["pending"])
            emails.add_metric(["failed"], figures["parked"])
    yield from (pending, oldest, parked, emails)


def _registry() -> CollectorRegistry:
    if MULTIPROC_DIR:
        # A fresh registry per scrape, as prometheus_client's multi-process mode asks.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)
        registry.register(DatabaseCollector())
        return registry
    return _single_process_registry


_single_process_registry = REGISTRY
_single_process_registry.register(DatabaseCollector())


# --- The view ----------------------------------------------------------------------------
def _internal(request: HttpRequest) -> bool:
    """A direct request from a private or loopback address: not through the reverse proxy
    (which always adds X-Forwarded-For), so the proxy's own address does not count."""
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return address.is_private or address.is_loopback


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics in Prometheus's text format, for a bearer token (METRICS_TOKEN) or,
    with METRICS_INTERNAL_ONLY, for direct requests from private addresses."""
    from django.conf import settings
    from django.http import HttpResponse, JsonResponse

    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"result": "error", "message": "Use GET."}, status=405)
    token = settings.METRICS_TOKEN
    if token:
        given = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode("utf-8", "surrogatepass"), token.encode()
        ):
            response = JsonResponse(
                {"result": "error", "message": "Send Authorization: Bearer <METRICS_TOKEN>."},
                status=401,
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif settings.METRICS_INTERNAL_ONLY:
        if not _internal(request):
            return JsonResponse(
                {"result": "error", "message": "Metrics are served on the internal network only."},
                status=403,
            )
    elif not settings.DEBUG:
        return JsonResponse(
            {
                "result": "error",
                "message": "Metrics are off: set METRICS_TOKEN, or METRICS_INTERNAL_ONLY=1.",
            },
            status=403,
        )
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
