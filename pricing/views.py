"""GetTokenPricing: SolusIO → bridge (Step 6, DESIGN §3).

Plain Django rather than DRF: it sits on SolusIO's page-render path, answers from cache,
and its error shape {"result": "error", "message": ...} is fixed by the contract.
"""

import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bridge.outage import database_unavailable
from bridge.security import FailureCounter, client_ip
from pricing.services import NOT_FOUND, pricing_answer

logger = logging.getLogger(__name__)

ACTION = "GetTokenPricing"
MAX_USER_ID = 2**63 - 1  # the largest id the customers table can hold


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TokenRejected(BadRequest):
    pass


# Wrong or missing tokens per client address, shared by all processes. A correct token
# never touches it: the hot path only looks the address up in this process's own dict of
# addresses it saw pass the limit. Another process learns of a blocked address at that
# address's next wrong token, so a blocked address gets 429 everywhere for every wrong
# token, and a correct token is refused only where the block is known.
TOKEN_FAILURES = FailureCounter(
    "pricing-token",
    limit=lambda: settings.PRICING_TOKEN_FAILURE_LIMIT,
    window=lambda: settings.THROTTLE_WINDOW_SECONDS,
)
_blocked_until: dict[str, float] = {}  # address -> time.monotonic() the block ends
_MAX_BLOCKED = 10_000


def _blocked_here(address: str) -> bool:
    until = _blocked_until.get(address)
    if until is None:
        return False
    if until > time.monotonic():
        return True
    _blocked_until.pop(address, None)
    return False


def _token_rejected(address: str, exc: TokenRejected) -> JsonResponse:
    failures = TOKEN_FAILURES.fail(address)
    logger.warning(
        "GetTokenPricing: %s from %s (%d in the window)",
        exc.message.rstrip(".").lower(),
        address,
        failures,
    )
    if failures >= TOKEN_FAILURES.limit():
        if len(_blocked_until) >= _MAX_BLOCKED:
            now = time.monotonic()
            for stale in [a for a, until in _blocked_until.items() if until <= now]:
                del _blocked_until[stale]
            if len(_blocked_until) >= _MAX_BLOCKED:
                _blocked_until.clear()  # the shared counter still refuses wrong tokens
        _blocked_until[address] = time.monotonic() + TOKEN_FAILURES.window()
    if failures > TOKEN_FAILURES.limit():
        return _too_many()
    return error(exc.status, exc.message)


def _too_many() -> JsonResponse:
    return error(
        429,
        "Too many wrong tokens from this address; try again later.",
        **{"Retry-After": str(settings.THROTTLE_WINDOW_SECONDS)},
    )


def error(status: int, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"result": "error", "message": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _read_fields(request: HttpRequest) -> dict[str, Any]:
    limit = settings.PRICING_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest(400, "Invalid Content-Length.") from None
    if declared > limit:
        raise BadRequest(413, f"Request body larger than {limit} bytes.")
    if request.content_type == "multipart/form-data":
        form = request.POST  # Django's parser; the size is already bounded above
        fields: dict[str, Any] = {key: form.get(key) for key in form}
        if not fields:
            raise BadRequest(400, "Empty request body: send action, userid and token.")
        return fields
    body = request.read(limit + 1)
    if len(body) > limit:
        raise BadRequest(413, f"Request body larger than {limit} bytes.")
    if not body.strip():
        raise BadRequest(400, "Empty request body: send action, userid and token.")
    if request.content_type == "application/json":
        try:
            fields = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # the last: nested too deep
            raise BadRequest(400, "Malformed JSON body.") from None
        if not isinstance(fields, dict):
            raise BadRequest(400, "The JSON body must be an object.")
        return fields
    # application/x-www-form-urlencoded, or no content type at all (as curl -d sends it).
    # Decoded as QueryDict would (UTF-8, else Latin-1; bad escapes replaced, the last of a
    # repeated field wins) without its per-field objects: this is the hot path.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("iso-8859-1")
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            errors="replace",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        )
    except ValueError:
        raise BadRequest(400, "Malformed form body: too many fields.") from None
    return dict(pairs)


def _check_token(fields: dict[str, Any]) -> None:
    expected = settings.PRICING_API_TOKEN
    if not expected:
        return
    given = fields.get("token")
    if given is None or given == "":
        raise TokenRejected(401, "Missing token.")
    if not isinstance(given, str) or not hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode()
    ):
        raise TokenRejected(403, "Invalid token.")


def _user_id(fields: dict[str, Any]) -> int:
    raw = fields.get("userid")
    if raw is None or raw == "":
        raise BadRequest(400, "Missing userid.")
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise BadRequest(400, "userid must be an integer.")
    text = str(raw).strip()
    if not text.isascii() or not text.isdigit():
        raise BadRequest(400, "userid must be a positive integer.")
    if len(text) > 19 or int(text) > MAX_USER_ID:
        raise BadRequest(400, "userid is out of range.")
    user_id = int(text)
    if user_id == 0:
        raise BadRequest(400, "userid must be a positive integer.")
    return user_id


@csrf_exempt
def get_token_pricing(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return error(405, "Use POST.", Allow="POST")
    address = client_ip(request)
    if _blocked_until and _blocked_here(address):
        return _too_many()
    try:
        fields = _read_fields(request)
        _check_token(fields)
        action = fields.get("action")
        if action != ACTION:
            raise BadRequest(400, f"Unknown action: expected action={ACTION}.")
        user_id = _user_id(fields)
        body = pricing_answer(user_id)
    except TokenRejected as exc:
        return _token_rejected(address, exc)
    except BadRequest as exc:
        return error(exc.status, exc.message)
    except DatabaseError as exc:
        database_unavailable.failed("GetTokenPricing", exc)
        return error(503, "Pricing is temporarily unavailable.", **{"Retry-After": "5"})
    if body == NOT_FOUND:
        return error(404, f"No customer with userid {user_id}.")
    return HttpResponse(body, content_type="application/json")
