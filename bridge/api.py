"""Shared pieces of the staff REST API: permissions and one error shape."""

import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, IntegrityError
from django.http import Http404
from rest_framework import exceptions, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response

from bridge.outage import database_unavailable
from pricing.answercache import PricingCacheRefused

if TYPE_CHECKING:  # importing rest_framework.views here would be circular at start-up
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

# Seconds a client waits before retrying a change the pricing cache refused: refusals come
# from Redis's state (memory full, an ACL), which an operator fixes, not the next request.
CACHE_REFUSED_RETRY_AFTER = 30


class StaffModelPermissions(permissions.DjangoModelPermissions):
    """Staff only, and per model: read needs `view`, writes need add/change/delete."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": [],
    }

    def has_permission(self, request: Request, view: "APIView") -> bool:
        if not (request.user and request.user.is_authenticated and request.user.is_staff):
            return False
        if getattr(view, "queryset", None) is None and not hasattr(view, "get_queryset"):
            return True
        return super().has_permission(request, view)


def model_permission(action: str) -> type[StaffModelPermissions]:
    """For a viewset's own @action: staff with `<app>.<action>_<model>` on the view's model,
    whatever the HTTP method (a POST that re-sends a customer is a change, not an add)."""
    needed = [f"%(app_label)s.{action}_%(model_name)s"]
    methods = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    perms_map = {**{method: needed for method in methods}, "OPTIONS": []}
    return type(
        f"Needs{action.title()}Permission", (StaffModelPermissions,), {"perms_map": perms_map}
    )


# The apps whose models the staff API serves: one permission on any of them makes a reader
# of the API's schema.
API_APPS = ("pricing", "users", "usage", "payments")


class SchemaReaders(permissions.BasePermission):
    """The OpenAPI schema maps every staff endpoint: for active staff who hold at least one
    permission in the API's apps (superusers hold all). A staff login with no permissions,
    such as an account waiting for its grants, cannot read it."""

    def has_permission(self, request: Request, view: "APIView") -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        return user.is_superuser or any(
            perm.partition(".")[0] in API_APPS for perm in user.get_all_permissions()
        )


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key in ("detail", "non_field_errors") else f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error as {"message": str, "errors": {field: [str]}} with a fitting status
    (SolusIO's own shape, so scripts written against both read errors the same way)."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, IntegrityError):
        exc = exceptions.ValidationError({"non_field_errors": ["Conflicts with existing data."]})
    elif isinstance(exc, PricingCacheRefused):
        from rest_framework.views import set_rollback  # circular at module level (above)

        logger.warning("staff API: change refused (%s)", exc)
        set_rollback()
        response = Response(
            {"message": f"Not saved: {exc.explanation}.", "errors": {}},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = str(CACHE_REFUSED_RETRY_AFTER)
        return response
    elif isinstance(exc, DatabaseError):
        database_unavailable.failed("staff API", exc)
        return Response(
            {"message": "The database is temporarily unavailable.", "errors": {}},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if not isinstance(exc, exceptions.APIException):
        logger.exception("staff API: unexpected error")
        return Response(
            {"message": "Internal error; it has been logged.", "errors": {}},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    detail = exc.detail
    errors: dict[str, Any] = {}
    if isinstance(detail, dict):
        errors = {k: v if isinstance(v, list) else [v] for k, v in detail.items() if k != "detail"}
    elif isinstance(detail, list):
        errors = {"non_field_errors": detail}
    response = Response(
        {"message": _first_message(detail), "errors": errors}, status=exc.status_code
    )
    auth_header = getattr(exc, "auth_header", None)
    if (
        isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed)
        and auth_header
    ):
        response["WWW-Authenticate"] = auth_header
    if getattr(exc, "wait", None):
        response["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    return response
