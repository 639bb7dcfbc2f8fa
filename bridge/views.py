from datetime import datetime

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from bridge.tasks import HEARTBEAT_KEY


@require_safe
def ping(request: HttpRequest) -> JsonResponse:
    """A trivial JSON answer: the baseline GetTokenPricing is benchmarked against."""
    return JsonResponse({"ok": True})


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness: 200 when the database and cache answer, else 503.

    The worker heartbeat is reported but does not fail the check: web can serve prices
    while the worker restarts.
    """
    checks: dict[str, str] = {}
    healthy = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        checks["database"] = f"error: {type(exc).__name__}"
        healthy = False
    try:
        cache.set("bridge:healthz", "1", timeout=10)
        checks["cache"] = "ok" if cache.get("bridge:healthz") == "1" else "error: no read-back"
        healthy = healthy and checks["cache"] == "ok"
    except Exception as exc:  # noqa: BLE001
        checks["cache"] = f"error: {type(exc).__name__}"
        healthy = False
    beat = cache.get(HEARTBEAT_KEY) if checks["cache"] == "ok" else None
    if beat:
        age = (timezone.now() - datetime.fromisoformat(beat)).total_seconds()
        checks["worker_heartbeat_age_seconds"] = str(int(age))
    else:
        checks["worker_heartbeat_age_seconds"] = "never"
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks},
        status=200 if healthy else 503,
    )
