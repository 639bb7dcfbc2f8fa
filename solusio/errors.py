"""Typed errors of the SolusIO API client.

Every failure the client raises is a `SolusIOError`, so callers (Celery tasks above all) can
catch one class; the subclasses let them tell a transient problem (retried already, may be
retried again later) from one that needs a person (422, 401, 404).
"""

from __future__ import annotations

from collections.abc import Mapping


class SolusIOError(Exception):
    """A SolusIO call failed. `status` is None when no HTTP response was received."""

    # Transient failures: the client retries these itself; a task may retry them later too.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: Mapping[str, list[str]] | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.message = message
        self.status = status
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in (errors or {}).items()}
        self.method = method
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: ".lstrip() if self.method else ""
        status = f"HTTP {self.status}: " if self.status is not None else ""
        detail = ""
        if self.errors:
            detail = " " + "; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(self.errors.items()))
        return f"{where}{status}{self.message}{detail}"


class TransportError(SolusIOError):
    """No usable HTTP response: connection refused or dropped, TLS failure, timeout."""

    retryable = True

    def __init__(self, message: str, *, timeout: bool = False, **kwargs: object) -> None:
        self.timeout = timeout
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class InvalidResponse(SolusIOError):
    """A response that is not the JSON we expect: not JSON, truncated, or a missing field."""


class ClientError(SolusIOError):
    """A 4xx answer: the request itself is wrong, so sending it again will not help."""


class Unauthorized(ClientError):
    """401/403: the API token is wrong, expired or lacks the permission."""


class NotFound(ClientError):
    """404: the object does not exist (any more)."""


class ValidationFailed(ClientError):
    """422 with SolusIO's `{"message", "errors": {field: [...]}}`."""

    @property
    def email_taken(self) -> bool:
        # Laravel's stock wording, "The email has already been taken.", is what SolusIO
        # answers for a duplicate e-mail; matching on "taken" keeps us off the exact text.
        return any("taken" in m.lower() for m in self.errors.get("email", []))


class RateLimited(ClientError):
    """429. `retry_after` is the server's Retry-After in seconds, if it sent one."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object):
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ServerError(SolusIOError):
    """5xx: SolusIO or a proxy in front of it failed."""

    retryable = True


# What a Celery task may retry later (`autoretry_for`): the `retryable` kinds. A 4xx other
# than 429 would fail the same way again.
TRANSIENT_ERRORS: tuple[type[SolusIOError], ...] = (TransportError, RateLimited, ServerError)
