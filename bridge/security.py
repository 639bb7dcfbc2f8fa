"""Who is asking (the client address behind trusted proxies) and counting failed attempts
per address, for the throttles of GetTokenPricing and the staff API (portal and admin
logins use django-axes with the same address)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or with TRUSTED_PROXY_COUNT = n the address the outermost of our n
    proxies saw: the n-th entry from the right of TRUSTED_PROXY_HEADER (entries further
    left were written by the client and prove nothing)."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    meta_key = "HTTP_" + settings.TRUSTED_PROXY_HEADER.upper().replace("-", "_")
    entries = [e.strip() for e in str(request.META.get(meta_key, "")).split(",") if e.strip()]
    if len(entries) < count:
        return remote  # did not come through all our proxies
    candidate = entries[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


class FailureCounter:
    """Failures per client address in the shared cache, in fixed windows of `window()`
    seconds from an address's first failure."""

    def __init__(self, name: str, limit: Callable[[], int], window: Callable[[], int]) -> None:
        self.name = name
        self.limit = limit
        self.window = window

    def _key(self, address: str) -> str:
        return f"failures:{self.name}:{address}"

    def count(self, address: str) -> int:
        try:
            return int(cache.get(self._key(address)) or 0)
        except Exception:  # noqa: BLE001 - a cache outage must not turn a request into a 500
            logger.warning("%s throttle: the cache is not answering", self.name)
            return 0

    def blocked(self, address: str) -> bool:
        return self.count(address) >= self.limit()

    def fail(self, address: str) -> int:
        """Count one failure; the number in the current window, this one included."""
        key, window = self._key(address), self.window()
        try:
            if cache.add(key, 1, timeout=window):
                return 1
            try:
                return cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=window)
                return 1
        except Exception:  # noqa: BLE001 - as in count()
            logger.warning("%s throttle: the cache is not answering", self.name)
            return 0


STAFF_API_FAILURES = FailureCounter(
    "staff-api",
    limit=lambda: settings.STAFF_API_FAILURE_LIMIT,
    window=lambda: settings.THROTTLE_WINDOW_SECONDS,
)


class StaffApiThrottleMiddleware:
    """Refuses the staff API (429) to an address after STAFF_API_FAILURE_LIMIT answers of
    401 (a wrong or missing API key) within the window. Here rather than in an
    authentication class, so it holds whichever way API keys are checked."""

    prefix = "/api/v1/"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(self.prefix):
            return self.get_response(request)
        address = client_ip(request)
        if STAFF_API_FAILURES.blocked(address):
            logger.warning("staff API: refused %s (too many failed authentications)", address)
            return too_many_attempts(
                {"message": "Too many failed authentications; try again later.", "errors": {}}
            )
        response = self.get_response(request)
        if response.status_code == 401:
            failures = STAFF_API_FAILURES.fail(address)
            logger.warning(
                "staff API: failed authentication from %s (%d in the window)", address, failures
            )
        return response


def too_many_attempts(body: dict[str, object]) -> JsonResponse:
    response = JsonResponse(body, status=429)
    response["Retry-After"] = str(settings.THROTTLE_WINDOW_SECONDS)
    return response
