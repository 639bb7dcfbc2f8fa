"""SolusIO's `/api/v1` as the simulator serves it: routing, envelope, pagination, errors.

Handlers return (status, payload); the HTTP layer in `server` adds faults and the call log.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from solusio.simulator.state import Invalid, Missing, SimState, iso, parse_instant

PREFIX = "/api/v1"
DEFAULT_PER_PAGE = 15  # Laravel's default page size
MAX_PER_PAGE = 100  # assumed cap; the client follows pages, so a lower cap only costs calls

Result = tuple[int, Any]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # below /api/v1
    query: Mapping[str, str]
    body: Any
    authorization: str
    host: str


class Api:
    def __init__(self, state: SimState, token: str) -> None:
        self.state = state
        self.token = token
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Result]]] = [
            ("GET", re.compile(r"/users"), self.list_users),
            ("POST", re.compile(r"/users"), self.create_user),
            ("GET", re.compile(r"/users/(\d+)"), self.get_user),
            ("PUT", re.compile(r"/users/(\d+)"), self.update_user),
            ("PATCH", re.compile(r"/users/(\d+)"), self.update_user),
            ("DELETE", re.compile(r"/users/(\d+)"), self.delete_user),
            ("POST", re.compile(r"/users/(\d+)/tokens"), self.create_token),
            ("GET", re.compile(r"/plans"), self.list_plans),
            ("GET", re.compile(r"/plans/(\d+)"), self.get_plan),
            ("PUT", re.compile(r"/plans/(\d+)"), self.update_plan),
            ("GET", re.compile(r"/roles"), self.list_roles),
            ("GET", re.compile(r"/roles/(\d+)"), self.get_role),
            ("GET", re.compile(r"/account"), self.get_account),
            ("POST", re.compile(r"/auth/login"), self.login),
            ("GET", re.compile(r"/limit_groups"), self.list_limit_groups),
            ("GET", re.compile(r"/settings"), self.get_settings),
            ("PATCH", re.compile(r"/settings"), self.patch_settings),
            ("GET", re.compile(r"/servers"), self.list_servers),
            ("GET", re.compile(r"/servers/(\d+)"), self.get_server),
            ("GET", re.compile(r"/usage"), self.list_usage),
        ]

    def handle(self, request: Request) -> Result:
        path = request.path.rstrip("/") or "/"
        # Logging in is how a client without a token gets one.
        if path != "/auth/login" and not self._authorized(request.authorization):
            return 401, {"message": "Unauthenticated."}
        allowed = False
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            allowed = True
            if method != request.method:
                continue
            try:
                return handler(request, *(int(g) for g in match.groups()))
            except Missing:
                return 404, {"message": "Not Found."}
            except Invalid as exc:
                return 422, {"message": str(exc), "errors": exc.errors}
        if allowed:
            return 405, {"message": f"The {request.method} method is not supported for this route."}
        return 404, {"message": "Not Found."}

    def _authorized(self, header: str) -> bool:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential:
            return False
        return hmac.compare_digest(credential.strip().encode(), self.token.encode())

    # --- users ---------------------------------------------------------------------------------

    def list_users(self, request: Request) -> Result:
        # filter[billing_user_id] and other unknown filters are ignored, as Laravel does:
        # a client relying on them would get every user back (DESIGN §4 assumes no support).
        page, per_page = _paging(request.query)
        items, total = self.state.list_users(
            request.query.get("filter[search]") or None,
            (page - 1) * per_page,
            per_page,
            request.query.get("filter[status]") or None,
        )
        return 200, _page(request, items, total, page, per_page)

    def create_user(self, request: Request) -> Result:
        return 201, {"data": self.state.create_user(_body(request))}

    def get_user(self, request: Request, uid: int) -> Result:
        return 200, {"data": self.state.get_user(uid)}

    def update_user(self, request: Request, uid: int) -> Result:
        return 200, {"data": self.state.update_user(uid, _body(request))}

    def delete_user(self, request: Request, uid: int) -> Result:
        self.state.delete_user(uid)
        return 204, None

    def create_token(self, request: Request, uid: int) -> Result:
        return 201, {"data": self.state.create_token(uid, _body(request))}

    # --- plans, limit groups, settings -----------------------------------------------------

    def list_plans(self, request: Request) -> Result:
        return 200, _slice(request, self.state.list_plans(_filters(request.query)))

    def get_plan(self, request: Request, pid: int) -> Result:
        return 200, {"data": self.state.get_plan(pid)}

    def update_plan(self, request: Request, pid: int) -> Result:
        return 200, {"data": self.state.update_plan(pid, _body(request))}

    def list_limit_groups(self, request: Request) -> Result:
        return 200, _slice(request, self.state.list_limit_groups())

    def list_roles(self, request: Request) -> Result:
        return 200, _slice(request, self.state.list_roles())

    def get_role(self, request: Request, rid: int) -> Result:
        return 200, {"data": self.state.get_role(rid)}

    def get_account(self, request: Request) -> Result:
        return 200, {"data": self.state.account_json()}

    def login(self, request: Request) -> Result:
        return 200, {"data": self.state.login(_body(request), self.token)}

    def get_settings(self, request: Request) -> Result:
        return 200, {"data": self.state.get_settings()}

    def patch_settings(self, request: Request) -> Result:
        return 200, {"data": self.state.patch_settings(_body(request))}

    # --- servers and usage ---------------------------------------------------------------------

    def list_servers(self, request: Request) -> Result:
        filters = _filters(request.query)
        user = filters.pop("user_id", None)
        state = self.state
        page, per_page = _paging(request.query)
        shared: dict[Any, Any] = {}
        if user is not None:
            if not user.isdigit():
                raise Invalid({"filter.user_id": ["The filter.user id must be an integer."]})
            mine = state.servers_of(int(user))
            found = [seg for seg in mine if state.server_matches(seg, filters)]
        elif filters.keys() & _SERVER_FILTERS:
            found = state.filtered_servers(state.now() // 60 * 60, filters)
        else:
            # All servers alive now: the usage machinery over the one second [now, now + 1).
            # "Now" moves by whole minutes, so the page index is reused while a client pages.
            now = state.now() // 60 * 60
            rows, total = state.usage.rows(
                now, now + 1, (page - 1) * per_page, per_page, state.explicit, with_ips=False
            )
            items = [state.server_json(seg, shared) for seg, _ in rows]
            return 200, _page(request, items, total, page, per_page)
        start = (page - 1) * per_page
        items = [state.server_json(seg, shared) for seg in found[start : start + per_page]]
        return 200, _page(request, items, len(found), page, per_page)

    def get_server(self, request: Request, sid: int) -> Result:
        return 200, {"data": self.state.get_server(sid)}

    def list_usage(self, request: Request) -> Result:
        errors: dict[str, list[str]] = {}
        lo = parse_instant(request.query.get("filter[date_from]"), "filter.date_from", errors)
        hi = parse_instant(request.query.get("filter[date_to]"), "filter.date_to", errors)
        if lo is not None and hi is not None and hi <= lo:
            errors["filter.date_to"] = ["The filter.date to must be a date after filter.date from."]
        if errors:
            raise Invalid(errors)
        assert lo is not None
        assert hi is not None
        state = self.state
        # Usage is known up to now (by the minute, see list_servers): a period still running
        # reports what ran so far.
        now = state.now() // 60 * 60
        upto = min(hi, now)
        page, per_page = _paging(request.query)
        items: list[dict[str, Any]] = []
        total = 0
        if upto > lo:
            rows, total = state.usage.rows(
                lo, upto, (page - 1) * per_page, per_page, state.explicit
            )
            plans = state.plan_prices()
            billing_ids = state.billing_ids(seg.user_id for seg, _ in rows)
            rate = state.config.tokens_mismatch_rate
            period_open = upto < hi
            row_json = state.usage.row_json
            items = [
                row_json(seg, kind, lo, upto, period_open, plans, billing_ids, rate, iso)
                for seg, kind in rows
            ]
        return 200, _page(request, items, total, page, per_page)


def _body(request: Request) -> dict[str, Any]:
    if request.body is None:
        return {}
    if not isinstance(request.body, dict):
        raise Invalid({"body": ["The request body must be a JSON object."]})
    return request.body


# The SDK's FilterVirtualServers besides filter[user_id] (see SimState.server_matches).
_SERVER_FILTERS = {"status", "virtualization_type", "compute_resource_id"}


def _filters(query: Mapping[str, str]) -> dict[str, str]:
    """filter[name]=value pairs of a query, by name; empty values are no filter."""
    return {
        key[7:-1]: value
        for key, value in query.items()
        if key.startswith("filter[") and key.endswith("]") and value != ""
    }


def _paging(query: Mapping[str, str]) -> tuple[int, int]:
    page = query.get("page", "1")
    per_page = query.get("per_page", "")
    page_n = int(page) if page.isdigit() and int(page) > 0 else 1
    size = int(per_page) if per_page.isdigit() and int(per_page) > 0 else DEFAULT_PER_PAGE
    return page_n, min(size, MAX_PER_PAGE)


def _slice(request: Request, items: list[Any]) -> dict[str, Any]:
    page, per_page = _paging(request.query)
    start = (page - 1) * per_page
    return _page(request, items[start : start + per_page], len(items), page, per_page)


def _page(request: Request, items: list[Any], total: int, page: int, per_page: int) -> dict:
    """Laravel's paginated resource collection: data, links, meta."""
    last = max(1, -(-total // per_page))
    base = f"http://{request.host}{PREFIX}{request.path}"

    def link(n: int) -> str:
        query = {k: v for k, v in request.query.items() if k != "page"}
        query["page"] = str(n)
        return f"{base}?{urlencode(query)}"

    start = (page - 1) * per_page
    return {
        "data": items,
        "links": {
            "first": link(1),
            "last": link(last),
            "prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < last else None,
        },
        "meta": {
            "current_page": page,
            "from": start + 1 if items else None,
            "last_page": last,
            "path": base,
            "per_page": per_page,
            "to": start + len(items) if items else None,
            "total": total,
        },
    }
