"""Logs that can be followed: a request id set by the web request (or taken from the proxy's
`X-Request-ID`), carried in the headers of every Celery task it enqueues and restored in the
worker, on every log record; one JSON object per line with `LOG_FORMAT=json`; errors to
Sentry when `SENTRY_DSN` is set."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from celery import signals
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
TASK_HEADER = "bridge_request_id"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# A proxy's id is kept when it is short and plain, so it cannot forge log lines.
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_id() -> str:
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or "-") on every record, as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id, and the
    traceback as `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class RequestIdMiddleware:
    """Sets the request id for the request's logs and tasks, and answers it in
    `X-Request-ID`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get(HEADER, "")
        current = given if _VALID.fullmatch(given) else new_id()
        token = request_id.set(current)
        try:
            response = self.get_response(request)
            response[HEADER] = current
            return response
        finally:
            request_id.reset(token)


# --- Celery: the id travels in the task's headers ----------------------------------------


@signals.before_task_publish.connect
def _send_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    current = request_id.get()
    if current is not None and headers is not None:
        headers.setdefault(TASK_HEADER, current)


_task_tokens: ContextVar[list[Token[str | None]]] = ContextVar("request_id_tokens")


@signals.task_prerun.connect
def _restore_request_id(task: Any = None, task_id: str | None = None, **_: Any) -> None:
    # The sender's id; else the caller's (an eager task runs in the caller's context); else
    # its own (beat, a sweep), so what the task enqueues follows it.
    sent = _sent_id(task.request) if task is not None else None
    token = request_id.set(sent or request_id.get() or task_id or new_id())
    _task_tokens.set([*_task_tokens.get([]), token])


def _sent_id(request: Any) -> str | None:
    # A worker puts a message's headers on the request itself; `apply()` under `headers`.
    return getattr(request, TASK_HEADER, None) or (request.headers or {}).get(TASK_HEADER)


@signals.task_postrun.connect
def _forget_request_id(**_: Any) -> None:
    tokens = _task_tokens.get([])
    if tokens:
        request_id.reset(tokens[-1])
        _task_tokens.set(tokens[:-1])


# --- Sentry --------------------------------------------------------------------------------


def init_sentry(dsn: str, *, environment: str | None = None, **options: Any) -> None:
    """Error reports to Sentry, tagged with the request id; no personal data, no tracing."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    def tag_request_id(event: Any, hint: Any) -> Any:
        current = request_id.get()
        if current is not None:
            event.setdefault("tags", {})["request_id"] = current
        return event

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        traces_sample_rate=0.0,
        before_send=tag_request_id,
        **options,
    )
