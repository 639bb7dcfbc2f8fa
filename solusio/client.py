"""The SolusIO API client: everything the bridge says to SolusIO goes through here, with the
configured timeouts and retries, and comes back as typed records. One pooled session per
client, so make one per task or thread (docs/architecture.md, SolusIO)."""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import HTTPAdapter

from solusio.errors import (
    ClientError,
    InvalidResponse,
    NotFound,
    RateLimited,
    ServerError,
    SolusIOError,
    TransportError,
    Unauthorized,
    ValidationFailed,
)
from solusio.records import LimitGroup, LinkResult, Plan, Server, Settings, User, UserStatus
from solusio.redact import redact
from solusio.retry import RetryPolicy, parse_retry_after
from solusio.schemas import plan_update_request
from solusio.usage_schema import UsageEndpointUnusable, UsageRow, parse_usage_row

log = logging.getLogger("solusio.client")

# An unparseable answer to a read is worth reading again (a proxy cut it short); to a write
# it is not: the write may have happened, and the caller must look before acting again.
_RETRY_INVALID_FOR = frozenset({"GET"})
# Errors in how the request was built: sending it again cannot help.
_NOT_TRANSIENT = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
)
_UNSET: Any = object()


class SolusIOClient:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        verify_tls: bool | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        per_page: int = 100,
        pool_size: int = 10,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if base_url is None or token is None:
            from django.conf import settings

            base_url = settings.SOLUSIO_API_URL if base_url is None else base_url
            token = settings.SOLUSIO_API_TOKEN if token is None else token
        if verify_tls is None:
            verify_tls = _setting("SOLUSIO_VERIFY_TLS", True)
        if not base_url or not token:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured("SOLUSIO_API_URL and SOLUSIO_API_TOKEN must both be set")
        self.base_url = base_url.rstrip("/")
        self.verify_tls = bool(verify_tls)
        self.timeout = (connect_timeout, read_timeout)
        self.retry = retry or RetryPolicy()
        self.per_page = per_page
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._session = requests.Session()
        # Retries are ours (they must see 429/5xx and be logged); urllib3 must not add its own.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )

    def __repr__(self) -> str:
        return f"<SolusIOClient {self.base_url}>"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SolusIOClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Users ---------------------------------------------------------------------------

    def iter_users(self, *, search: str | None = None) -> Iterator[User]:
        params = {"filter[search]": search} if search else None
        for i, item in enumerate(self._paginate("/users", params)):
            yield User.parse(item, f"users[{i}]")

    def find_user_by_email(self, email: str) -> User | None:
        """The user whose e-mail is exactly `email` (case-insensitive), if any.

        `filter[search]` is a substring search, so its hits are checked for an exact match.
        """
        wanted = email.strip().lower()
        for user in self.iter_users(search=email.strip()):
            if user.email.lower() == wanted:
                return user
        return None

    def get_user(self, user_id: int) -> User:
        return User.parse(self._data("GET", f"/users/{int(user_id)}"))

    def create_user(
        self,
        *,
        email: str,
        password: str,
        status: UserStatus | str = UserStatus.ACTIVE,
        billing_user_id: int | None = None,
        limit_group_id: int | None = None,
        language_id: int | None = None,
        roles: list[int] | None = None,
    ) -> User:
        """A plain create. Prefer `create_or_link_user`, which is safe to repeat."""
        body: dict[str, Any] = {
            "email": email,
            "password": password,
            "status": str(status),
            "billing_user_id": billing_user_id,
        }
        if limit_group_id is not None:
            body["limit_group_id"] = limit_group_id
        if language_id is not None:
            body["language_id"] = language_id
        if roles:
            body["roles"] = list(roles)
        return User.parse(self._data("POST", "/users", json=body))

    def update_user(
        self,
        user_id: int,
        *,
        email: str = _UNSET,
        password: str = _UNSET,
        status: UserStatus | str = _UNSET,
        billing_user_id: int | None = _UNSET,
        limit_group_id: int | None = _UNSET,
        language_id: int = _UNSET,
        roles: list[int] = _UNSET,
    ) -> User:
        """PUT only the fields given (None is sent as null, e.g. to unlink a user)."""
        given = {
            "email": email,
            "password": password,
            "status": str(status) if status is not _UNSET else _UNSET,
            "billing_user_id": billing_user_id,
            "limit_group_id": limit_group_id,
            "language_id": language_id,
            "roles": roles,
        }
        body = {k: v for k, v in given.items() if v is not _UNSET}
        if not body:
            raise ValueError("update_user needs at least one field to change")
        return User.parse(self._data("PUT", f"/users/{int(user_id)}", json=body))

    def delete_user(self, user_id: int) -> None:
        self._request("DELETE", f"/users/{int(user_id)}")

    def set_user_status(self, user_id: int, status: UserStatus | str) -> User:
        """Activate, lock or suspend: a PUT of `status`, as the official modules do."""
        return self.update_user(user_id, status=UserStatus(status))

    def create_or_link_user(
        self,
        *,
        email: str,
        billing_user_id: int,
        password: str | None = None,
        status: UserStatus | str = UserStatus.ACTIVE,
        limit_group_id: int | None = None,
        language_id: int | None = None,
        roles: list[int] | None = None,
        look_first: bool = True,
    ) -> LinkResult:
        """Make sure a SolusIO user with `email` exists and carries `billing_user_id`.

        Safe to repeat and to retry: it looks the e-mail up first (like the official WHMCS
        module), treats SolusIO's "e-mail taken" answer as "already exists", and after an
        ambiguous failure (connection lost, truncated answer) looks again before giving up,
        so a create whose answer was lost never becomes a second user.

        `look_first=False` skips the first look-up, for callers that expect the user not to
        exist yet (a bulk sync of new customers): one call instead of two, and just as
        safe, because SolusIO refuses a second user with the same e-mail and that answer
        leads to the look-up.
        """
        existing = self.find_user_by_email(email) if look_first else None
        if existing is None:
            try:
                user = self.create_user(
                    email=email,
                    # Customers sign in through the bridge's one-time tokens; SolusIO still
                    # wants a password, so an unguessable one is made when none is given.
                    password=password or secrets.token_urlsafe(24),
                    status=status,
                    billing_user_id=billing_user_id,
                    limit_group_id=limit_group_id,
                    language_id=language_id,
                    roles=roles,
                )
                return LinkResult(user=user, created=True, relinked=False)
            except ValidationFailed as exc:
                if not exc.email_taken:
                    raise
                log.info("SolusIO user %s already exists; linking it", email)
                existing = self.find_user_by_email(email)
                if existing is None:
                    raise InvalidResponse(
                        "SolusIO says the e-mail is taken but no user has it", status=422
                    ) from exc
            except (TransportError, InvalidResponse, ServerError):
                existing = self.find_user_by_email(email)
                if existing is None:
                    raise
                log.info("SolusIO user %s was created by an attempt whose answer was lost", email)
        return self._link(existing, billing_user_id)

    def _link(self, user: User, billing_user_id: int) -> LinkResult:
        if user.billing_user_id == billing_user_id:
            return LinkResult(user=user, created=False, relinked=False)
        if user.billing_user_id is not None:
            log.warning(
                "SolusIO user %s was linked to billing user %s; re-linking to %s",
                user.id,
                user.billing_user_id,
                billing_user_id,
            )
        updated = self.update_user(user.id, billing_user_id=billing_user_id)
        return LinkResult(user=updated, created=False, relinked=True)

    def create_login_token(self, user_id: int) -> str:
        """A one-time access token for single sign-on (Step 9). Never logged."""
        data = self._data("POST", f"/users/{int(user_id)}/tokens", json={"is_one_time": True})
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise InvalidResponse("token response has no data.access_token")
        return token

    # --- Plans, limit groups, settings, servers --------------------------------------------

    def iter_plans(self) -> Iterator[Plan]:
        for i, item in enumerate(self._paginate("/plans")):
            yield Plan.parse(item, f"plans[{i}]")

    def list_plans(self) -> list[Plan]:
        return list(self.iter_plans())

    def get_plan(self, plan_id: int) -> Plan:
        return Plan.parse(self._data("GET", f"/plans/{int(plan_id)}"))

    def update_plan_prices(
        self,
        plan_id: int,
        *,
        tokens_per_hour: int | None = None,
        tokens_per_month: int | None = None,
        ip_tokens_per_hour: int | None = None,
        ip_tokens_per_month: int | None = None,
    ) -> Plan:
        """Change a plan's token prices as the official SDK and Terraform provider do: read
        the plan, change the token fields, `PUT` the whole PlanUpdateRequest back (a partial
        body may be refused, or reset the fields it leaves out)."""
        given = {
            "tokens_per_hour": tokens_per_hour,
            "tokens_per_month": tokens_per_month,
            "ip_tokens_per_hour": ip_tokens_per_hour,
            "ip_tokens_per_month": ip_tokens_per_month,
        }
        changes = {k: v for k, v in given.items() if v is not None}
        if not changes:
            raise ValueError("update_plan_prices needs at least one price")
        for key, value in changes.items():
            # Tokens can only be integers (seed, Step 1).
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
        current = self.get_plan(plan_id)
        body = {**plan_update_request(current.raw), **changes}
        return Plan.parse(self._data("PUT", f"/plans/{int(plan_id)}", json=body))

    def iter_limit_groups(self) -> Iterator[LimitGroup]:
        for i, item in enumerate(self._paginate("/limit_groups")):
            yield LimitGroup.parse(item, f"limit_groups[{i}]")

    def list_limit_groups(self) -> list[LimitGroup]:
        return list(self.iter_limit_groups())

    def get_settings(self) -> Settings:
        return Settings.parse(self._data("GET", "/settings"))

    def patch_settings(self, changes: Mapping[str, Any]) -> Settings:
        """PATCH a nested subset, e.g. `{"features": {"allow_registration": False}}`."""
        return Settings.parse(self._data("PATCH", "/settings", json=dict(changes)))

    def iter_servers(
        self, *, user_id: int | None = None, status: str | None = None
    ) -> Iterator[Server]:
        """Servers (alive now), optionally one user's and/or in one of SolusIO's statuses
        (`started`, `stopped`, `processing`, `paused`, `unavailable`, `not exists`)."""
        params: dict[str, Any] = {}
        if user_id is not None:
            params["filter[user_id]"] = int(user_id)
        if status is not None:
            params["filter[status]"] = status
        for i, item in enumerate(self._paginate("/servers", params or None)):
            yield Server.parse(item, f"servers[{i}]")

    def get_server(self, server_id: int) -> Server:
        return Server.parse(self._data("GET", f"/servers/{int(server_id)}"))

    # --- Usage -------------------------------------------------------------------------------

    def iter_usage(self, date_from: datetime, date_to: datetime) -> Iterator[UsageRow]:
        """Usage rows for the half-open period [date_from, date_to), page by page."""
        url = self.usage_url
        for i, item in enumerate(self.iter_usage_items(date_from, date_to)):
            yield parse_usage_row(item, f"usage[{i}]", url=url)

    @property
    def usage_url(self) -> str:
        """Where usage is read from (SOLUSIO_USAGE_PATH below the API's base URL)."""
        return self.base_url + self._usage_path()

    @staticmethod
    def _usage_path() -> str:
        return "/" + str(_setting("SOLUSIO_USAGE_PATH", "/usage")).strip("/")

    def iter_usage_items(
        self,
        date_from: datetime,
        date_to: datetime,
        *,
        first_page: int = 1,
        last_page: int | None = None,
    ) -> Iterator[Any]:
        """`iter_usage`'s rows as SolusIO sent them (decoded JSON, not yet checked against
        the assumed shape): for a caller that fetches in one thread and parses in another.
        Parse each with `solusio.usage_schema.parse_usage_row`. `first_page`/`last_page`:
        only those pages (to the last one there is without `last_page`), for a pull cut
        into parts by `usage_page_count`."""
        return self._usage_pages(
            self._usage_path(), self._usage_params(date_from, date_to), first_page, last_page
        )

    def usage_page_count(self, date_from: datetime, date_to: datetime) -> int | None:
        """How many pages of usage the period has (at this client's `per_page`), as the
        first page's `meta.last_page` says; None when it does not say (only `links`).
        Raises as `iter_usage_items` does."""
        params = {**self._usage_params(date_from, date_to), "per_page": self.per_page, "page": 1}
        path = self._usage_path()
        payload = self._usage_request(path, params)
        meta = payload.get("meta") if isinstance(payload, dict) else None
        last = meta.get("last_page") if isinstance(meta, dict) else None
        return last if isinstance(last, int) and last >= 1 else None

    @staticmethod
    def _usage_params(date_from: datetime, date_to: datetime) -> dict[str, str]:
        if date_from.tzinfo is None or date_to.tzinfo is None:
            # A naive date would be read in SolusIO's zone, not the billing zone.
            raise ValueError("usage period bounds must be timezone-aware")
        if date_to <= date_from:
            raise ValueError("usage period must end after it starts")
        return {
            _setting("SOLUSIO_USAGE_FILTER_FROM", "filter[date_from]"): date_from.isoformat(),
            _setting("SOLUSIO_USAGE_FILTER_TO", "filter[date_to]"): date_to.isoformat(),
        }

    def _usage_request(self, path: str, params: Mapping[str, Any]) -> Any:
        """One usage page, its failures told as `_usage_pages` tells them."""
        try:
            payload = self._request("GET", path, params=params)
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise InvalidResponse("a list response has no data array", method="GET", path=path)
        except (ClientError, InvalidResponse) as exc:
            unusable = self._usage_unusable(path, exc)
            if unusable is None:
                raise
            raise unusable from exc
        return payload

    def _usage_pages(
        self,
        path: str,
        params: Mapping[str, Any],
        first_page: int = 1,
        last_page: int | None = None,
    ) -> Iterator[Any]:
        """`_paginate`, with the answers that mean "no usage list here" (404, 405, or no
        list envelope) raised as one `UsageEndpointUnusable`: the usage route is a guess
        (DESIGN §4), so its failure names the settings that move it."""
        try:
            yield from self._paginate(path, params, first_page, last_page)
        except (ClientError, InvalidResponse) as exc:
            unusable = self._usage_unusable(path, exc)
            if unusable is None:
                raise
            raise unusable from exc

    def _usage_unusable(
        self, path: str, exc: ClientError | InvalidResponse
    ) -> UsageEndpointUnusable | None:
        """The error that says there is no usage list at `path`, when `exc` means that."""
        if isinstance(exc, ClientError) and exc.status not in (404, 405):
            return None
        if isinstance(exc, ClientError):
            reason = f"HTTP {exc.status} {exc.message}"
        else:
            reason = f"not a usage list: {exc.message}"
        return UsageEndpointUnusable(self.base_url + path, reason)

    # --- Transport -----------------------------------------------------------------------------

    def _paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        first_page: int = 1,
        last_page: int | None = None,
    ) -> Iterator[Any]:
        """Every item of a paginated list (of pages `first_page` to `last_page`, or to the
        last there is), fetching one page at a time as they are consumed.

        The next page is requested from our own base URL with `page=N`, never by following
        `links.next` verbatim: behind a proxy SolusIO may write links with another scheme or
        host, and following one would send the API token wherever it points.
        """
        query: dict[str, Any] = dict(params or {})
        query.setdefault("per_page", self.per_page)
        page = first_page
        while last_page is None or page <= last_page:
            query["page"] = page
            payload = self._request("GET", path, params=query)
            items = payload.get("data") if isinstance(payload, dict) else None
            if not isinstance(items, list):
                raise InvalidResponse("a list response has no data array", method="GET", path=path)
            next_page = _next_page(payload, page, path)
            del payload
            yield from items
            if next_page is None:
                return
            page = next_page

    def _data(self, method: str, path: str, *, json: Any = None) -> Any:
        payload = self._request(method, path, json=json)
        if not isinstance(payload, dict) or "data" not in payload:
            raise InvalidResponse("response has no data envelope", method=method, path=path)
        return payload["data"]

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._send(method, path, params, json)
            except SolusIOError as exc:
                retryable = exc.retryable or (
                    isinstance(exc, InvalidResponse) and method in _RETRY_INVALID_FOR
                )
                if not retryable or attempt >= self.retry.max_attempts:
                    raise
                if isinstance(exc, RateLimited) and not self.retry.wait_on_rate_limit:
                    raise
                if (
                    not self.retry.retry_unfinished_writes
                    and method != "GET"
                    and _may_still_run(exc)
                ):
                    raise
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    delay = self.retry.retry_after(exc.retry_after)
                else:
                    delay = self.retry.backoff(attempt, self._rng)
                log.warning(
                    "SolusIO %s %s failed (%s); retry %d of %d in %.2f s",
                    method,
                    path,
                    exc,
                    attempt,
                    self.retry.max_attempts - 1,
                    delay,
                )
                self._sleep(delay)

    def call_once(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> tuple[int, Any]:
        """One request, no retries, any HTTP status: (status, decoded JSON, or the text when
        the body is not JSON, or None when empty). For the first-day probe, which reports
        what SolusIO answers instead of acting on it; TransportError when nothing answers."""
        response = self._exchange(method, path, params, json)
        if not response.content.strip():
            return response.status_code, None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any) -> Any:
        response = self._exchange(method, path, params, json)
        body = response.content
        if 200 <= response.status_code < 300:
            if response.status_code == 204 or not body.strip():
                return None
            try:
                return response.json()
            except ValueError:
                raise InvalidResponse(
                    f"response is not valid JSON ({len(body)} bytes; truncated?)",
                    status=response.status_code,
                    method=method,
                    path=path,
                ) from None
        raise _error_from(response, method, path)

    def _exchange(
        self, method: str, path: str, params: Mapping[str, Any] | None, json: Any
    ) -> requests.Response:
        """Send one request and read the whole answer; TransportError when none came."""
        url = self.base_url + path
        if json is not None and log.isEnabledFor(logging.DEBUG):
            log.debug("SolusIO %s %s body %s", method, path, redact(json))
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                json=json,
                timeout=self.timeout,
                verify=self.verify_tls,
            )
            response.content  # noqa: B018 - read the body here, where its errors are caught
        except requests.Timeout as exc:
            raise TransportError(
                f"timed out: {type(exc).__name__}", timeout=True, method=method, path=path
            ) from None
        except _NOT_TRANSIENT as exc:
            raise SolusIOError(f"bad request URL: {exc}", method=method, path=path) from None
        except requests.RequestException as exc:
            # ConnectionError (refused, reset, dropped), ChunkedEncodingError (body cut short).
            raise TransportError(
                f"connection failed: {type(exc).__name__}", method=method, path=path
            ) from None
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug(
            "SolusIO %s %s %s -> %s in %.1f ms",
            method,
            path,
            dict(params or {}),
            response.status_code,
            elapsed_ms,
        )
        return response


def _may_still_run(exc: SolusIOError) -> bool:
    """Whether the request may still be running in SolusIO: no answer in time, or a
    gateway that stopped waiting for it."""
    return (isinstance(exc, TransportError) and exc.timeout) or (
        isinstance(exc, ServerError) and exc.status == 504
    )


def _setting(name: str, default: Any) -> Any:
    """A Django setting, or `default` where Django is not configured (scripts, benches)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:
        return default


def _next_page(payload: Mapping[str, Any], page: int, path: str) -> int | None:
    meta = payload.get("meta")
    if isinstance(meta, dict):
        current, last = meta.get("current_page"), meta.get("last_page")
        if isinstance(current, int) and isinstance(last, int):
            return current + 1 if current < last else None
    links = payload.get("links")
    link = links.get("next") if isinstance(links, dict) else None
    if not link:
        return None
    pages = parse_qs(urlsplit(str(link)).query).get("page", [])
    if not pages or not pages[0].isdigit() or int(pages[0]) <= page:
        # A next link that does not move forward would loop for ever.
        raise InvalidResponse(f"unusable links.next {link!r}", method="GET", path=path)
    return int(pages[0])


def _error_from(response: requests.Response, method: str, path: str) -> SolusIOError:
    status = response.status_code
    message = response.reason or f"HTTP {status}"
    errors: dict[str, list[str]] = {}
    try:
        payload = response.json()
    except ValueError:
        payload = None
        snippet = response.text.strip()[:200]
        if snippet:
            message = f"{message}: {snippet}"
    if isinstance(payload, dict):
        message = str(payload.get("message") or message)
        raw_errors = payload.get("errors")
        if isinstance(raw_errors, dict):
            errors = {
                str(k): [str(m) for m in v] if isinstance(v, list) else [str(v)]
                for k, v in raw_errors.items()
            }
    kwargs: dict[str, Any] = {"status": status, "errors": errors, "method": method, "path": path}
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(message, retry_after=retry_after, **kwargs)
    if status in (401, 403):
        return Unauthorized(message, **kwargs)
    if status == 404:
        return NotFound(message, **kwargs)
    if status == 422:
        return ValidationFailed(message, **kwargs)
    if 400 <= status < 500:
        return ClientError(message, **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    return InvalidResponse(message, **kwargs)
