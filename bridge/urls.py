from typing import Any, cast

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, reverse_lazy
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView

from bridge.metrics import metrics_view, timed_pricing
from bridge.views import healthz, ping
from pricing.views import get_token_pricing

admin.site.site_header = "SolusIO billing bridge"
admin.site.site_title = "Billing bridge"
admin.site.index_title = "Billing"
# "View site": the customers' portal (the site has no page at "/").
admin.site.site_url = cast(str, reverse_lazy("account-home"))

pricing_view = timed_pricing(get_token_pricing)

urlpatterns = [
    path("api/solusio", pricing_view, name="get-token-pricing"),
    path("api/solusio/", pricing_view),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include("bridge.api_urls")),
    path("healthz", healthz, name="healthz"),
    path("ping", ping, name="ping"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("", include("payments.stripe_urls")),
    path("account/invoices/", include("usage.urls")),
    path("account/", include("users.urls")),
]


def _api_error(
    request: HttpRequest, status: int, message: str, fallback: Any, **kw: Any
) -> HttpResponse:
    """Errors under /api/ are JSON like the rest of the API; elsewhere Django's pages."""
    if request.path.startswith("/api/"):
        return JsonResponse({"result": "error", "message": message}, status=status)
    return fallback(request, **kw)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _api_error(request, 400, "Bad request.", defaults.bad_request, exception=exception)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _api_error(request, 403, "Forbidden.", defaults.permission_denied, exception=exception)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _api_error(request, 404, "Not found.", defaults.page_not_found, exception=exception)


def handler500(request: HttpRequest) -> HttpResponse:
    return _api_error(request, 500, "Internal error; it has been logged.", defaults.server_error)
