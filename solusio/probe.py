"""The first-day probe: what this SolusIO answers, endpoint by endpoint, against what the
bridge expects (the SDK's schemas, the bridge's own parsers, the assumed usage row), with
the setting that would fix each difference; `compare` and `guess_renames` are pure."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from solusio import schemas as s
from solusio.client import SolusIOClient
from solusio.errors import InvalidResponse, SolusIOError
from solusio.records import LimitGroup, Plan, Server, Settings, User
from solusio.redact import REDACTED, redact, redact_emails
from solusio.usage_schema import parse_usage_row

Schema = dict[str, Any]

# The usage row as `usage_schema.parse_usage_row` reads it (its required fields are required
# here; `hours`, `ended_at` and `tokens` the bridge can do without). The parser is the
# authority: the probe runs it on every row too.
_USAGE_PLAN = s.obj(
    {
        "id": s.INT,
        "name": s.STR,
        "tokens_per_hour": s.INT,
        "tokens_per_month": s.INT,
        "ip_tokens_per_hour": s.INT,
        "ip_tokens_per_month": s.INT,
        "backup_price": s.NUM,
    },
    optional=("ip_tokens_per_hour", "ip_tokens_per_month", "backup_price"),
)
USAGE_ROW = s.obj(
    {
        "user": s.obj({"id": s.INT, "billing_user_id": s.nullable(s.INT)}),
        "server": s.obj({"id": s.INT, "uuid": s.STR, "name": s.STR}),
        "plan": _USAGE_PLAN,
        "item": s.enum("server", "additional_ip", "backup"),
        "hours": s.INT,
        "started_at": s.TIME,
        "ended_at": s.nullable(s.TIME),
        "tokens": s.nullable(s.INT),
    },
    optional=("hours", "ended_at", "tokens"),
)
LOGIN_TOKEN = s.obj({"access_token": s.STR})

# Settings that change how the bridge reads /usage. Named here once: the pull reads them
# (when set) and the probe names them in its advice.
USAGE_PATH_SETTING = "SOLUSIO_USAGE_PATH"
USAGE_FROM_SETTING = "SOLUSIO_USAGE_FILTER_FROM"
USAGE_TO_SETTING = "SOLUSIO_USAGE_FILTER_TO"
USAGE_SOURCE_SETTING = "USAGE_SOURCE"


@dataclass(frozen=True)
class FieldDiff:
    """Field by field: what an answer has against a schema (paths like `data[].plan.id`)."""

    matched: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # required by the schema, absent
    extra: tuple[str, ...] = ()  # present, not in the schema
    mistyped: tuple[str, ...] = ()  # "path: expected integer, got string"

    @property
    def clean(self) -> bool:
        return not (self.missing or self.mistyped)


def compare(schema: Schema, instance: Any, path: str = "") -> FieldDiff:
    """Compare `instance` with `schema` leaf by leaf. Arrays: every element is compared and
    a field counts as matched only where no element lacks or mistypes it."""
    acc = _Acc()
    _walk(schema, instance, path, acc)
    return acc.result()


@dataclass
class _Acc:
    matched: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    extra: set[str] = field(default_factory=set)
    mistyped: dict[str, str] = field(default_factory=dict)

    def result(self) -> FieldDiff:
        bad = self.missing | set(self.mistyped)
        return FieldDiff(
            matched=tuple(sorted(self.matched - bad)),
            missing=tuple(sorted(self.missing)),
            extra=tuple(sorted(self.extra)),
            mistyped=tuple(f"{k}: {v}" for k, v in sorted(self.mistyped.items())),
        )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(schema: Schema, value: Any, path: str, acc: _Acc) -> None:
    if "anyOf" in schema:
        if value is None:
            acc.matched.add(path)
            return
        schema = schema["anyOf"][0]
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        if not isinstance(value, Mapping):
            acc.mistyped[path or "$"] = f"expected an object, got {_kind(value)}"
            return
        required = set(schema.get("required", ()))
        for key, sub in schema["properties"].items():
            if key in value:
                _walk(sub, value[key], _join(path, key), acc)
            elif key in required:
                acc.missing.add(_join(path, key))
        acc.extra.update(_join(path, key) for key in value if key not in schema["properties"])
        return
    if kind == "array" and "items" in schema:
        if not isinstance(value, list):
            acc.mistyped[path] = f"expected an array, got {_kind(value)}"
            return
        if not value:
            acc.matched.add(path)
        for element in value:
            _walk(schema["items"], element, f"{path}[]", acc)
        return
    problem = _leaf_problem(schema, value)
    if problem:
        acc.mistyped[path] = problem
    else:
        acc.matched.add(path)


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, Mapping),
}


def _leaf_problem(schema: Schema, value: Any) -> str:
    kind = schema.get("type")
    if kind is not None and not _JSON_TYPES[kind](value):
        return f"expected {'an' if kind[0] in 'aeiou' else 'a'} {kind}, got {_kind(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{value!r} is not one of {', '.join(map(repr, schema['enum']))}"
    if s.problems(schema, value):  # patterns, maps of strings
        return f"{_short(value)} does not have the expected form"
    return ""


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"a number ({value!r})"
    return names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def guess_renames(diff: FieldDiff) -> list[tuple[str, str]]:
    """(missing, extra) pairs in the same object: a field SolusIO may call by another name."""
    pairs = []
    for gone in diff.missing:
        parent = gone.rpartition(".")[0]
        for new in diff.extra:
            if new.rpartition(".")[0] == parent:
                pairs.append((gone, new))
    return pairs


# --- the endpoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    schema: Schema  # of one object (a list's element)
    params: Mapping[str, Any] = field(default_factory=dict)
    many: bool = False  # a paginated list
    parse: Callable[[Any, str], object] | None = None  # the bridge's parser of one object
    needed: tuple[str, ...] = ()  # fields the bridge reads: a miss here stops something
    # What stops working when this endpoint cannot be read.
    used_for: str = ""
    cheap: bool = True  # the doctor runs the cheap ones
    body: Any = None


@dataclass
class EndpointReport:
    endpoint: Endpoint
    reachable: bool
    status: int | None
    answer: Any = None
    fields: FieldDiff | None = None
    parse_error: str = ""
    items: int | None = None
    notes: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)  # settings (or actions) that would fix it
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether the bridge can use this answer as it is."""
        return (
            self.reachable
            and self.status is not None
            and 200 <= self.status < 300
            and not self.parse_error
            and not self.error
        )

    @property
    def needed_missing(self) -> list[str]:
        """The fields the bridge reads that are missing or mistyped (none known for an
        empty list)."""
        if self.fields is None or self.items == 0:
            return []
        return [n for n in self.endpoint.needed if not covers(self.fields, self._path(n))]

    def needed_matched(self) -> list[str]:
        if self.fields is None:
            return []
        return [n for n in self.endpoint.needed if covers(self.fields, self._path(n))]

    def _path(self, name: str) -> str:
        return f"data[].{name}" if self.endpoint.many else f"data.{name}"


def covers(diff: FieldDiff, path: str) -> bool:
    """Whether `path` (a leaf, or an object or array with its fields) matched in full."""

    def inside(other: str) -> bool:
        return other == path or other.startswith((path + ".", path + "[]"))

    bad = [*diff.missing, *(m.split(":")[0] for m in diff.mistyped)]
    return not any(inside(b) for b in bad) and any(inside(m) for m in diff.matched)


@dataclass(frozen=True)
class ProbeOptions:
    date_from: str  # ISO 8601, the period's first instant
    date_to: str  # ISO 8601, exclusive
    usage_path: str = "/usage"
    usage_from_param: str = "filter[date_from]"
    usage_to_param: str = "filter[date_to]"
    billing_type: str = "custom"
    billing_driver: str = "whmcs"
    per_page: int = 25
    sso_email: str | None = None
    login_url_template: str = ""


def endpoints(options: ProbeOptions) -> list[Endpoint]:
    page = {"page": 1, "per_page": options.per_page}
    return [
        Endpoint(
            "settings",
            "GET",
            "/settings",
            s.SETTINGS,
            parse=Settings.parse,
            needed=("features.allow_registration", "billing_integration.type"),
            used_for="the setup doctor (registration, billing integration)",
        ),
        Endpoint(
            "users",
            "GET",
            "/users",
            s.USER,
            params=page,
            many=True,
            parse=User.parse,
            needed=("id", "email", "status", "billing_user_id"),
            used_for="the user sync (find by e-mail, link, lock, suspend)",
        ),
        Endpoint(
            "plans",
            "GET",
            "/plans",
            s.PLAN,
            params=page,
            many=True,
            parse=Plan.parse,
            needed=tuple(dict.fromkeys(("id", "name", "tokens_per_hour", *_PUT_FIELDS))),
            used_for="plan mirroring and the price push (which sends the whole plan back)",
        ),
        Endpoint(
            "limit groups",
            "GET",
            "/limit_groups",
            s.LIMIT_GROUP,
            params=page,
            many=True,
            parse=LimitGroup.parse,
            needed=("id", "name", "vms.limit", "running_vms.limit", "additional_ips.limit"),
            used_for="new customers' limit group",
        ),
        Endpoint(
            "servers",
            "GET",
            "/servers",
            s.SERVER,
            params=page,
            many=True,
            parse=Server.parse,
            needed=("id", "uuid", "name", "status", "user.id", "plan.id", "created_at"),
            used_for="observed metering and paid backups",
            cheap=False,
        ),
        Endpoint(
            "usage",
            "GET",
            options.usage_path,
            USAGE_ROW,
            params={
                options.usage_from_param: options.date_from,
                options.usage_to_param: options.date_to,
                **page,
            },
            many=True,
            parse=parse_usage_row,
            needed=tuple(_leaves(USAGE_ROW, required_only=True)),
            used_for="the monthly close from /usage (USAGE_SOURCE=usage_api or both)",
            cheap=False,
        ),
    ]


# The PlanUpdateRequest fields the price push sends back (a plan without them is refused).
_PUT_FIELDS = tuple(s.PLAN_UPDATE_REQUEST["required"])


def _leaves(schema: Schema, path: str = "", *, required_only: bool = False) -> Iterable[str]:
    props = schema.get("properties")
    if not props:
        yield path
        return
    required = set(schema.get("required", ()))
    for key, sub in props.items():
        if required_only and key not in required:
            continue
        sub = sub["anyOf"][0] if "anyOf" in sub else sub
        yield from _leaves(sub, _join(path, key), required_only=required_only)


def sso_endpoint(user_id: int) -> Endpoint:
    return Endpoint(
        "login token",
        "POST",
        f"/users/{user_id}/tokens",
        LOGIN_TOKEN,
        needed=("access_token",),
        used_for="single sign-on into the user area",
        cheap=False,
        body={"is_one_time": True},
    )


def probe(
    client: SolusIOClient, options: ProbeOptions, *, cheap_only: bool = False
) -> list[EndpointReport]:
    """Call every endpoint the bridge uses (one token creation only with `sso_email`)."""
    reports = []
    for endpoint in endpoints(options):
        if cheap_only and not endpoint.cheap:
            continue
        report = call(client, endpoint)
        advise(report, options)
        reports.append(report)
    if options.sso_email and not cheap_only:
        reports.append(_probe_sso(client, options))
    return reports


def call(client: SolusIOClient, endpoint: Endpoint) -> EndpointReport:
    try:
        status, answer = client.call_once(
            endpoint.method, endpoint.path, params=endpoint.params or None, json=endpoint.body
        )
    except SolusIOError as exc:
        return EndpointReport(endpoint, reachable=False, status=None, error=str(exc))
    report = EndpointReport(endpoint, reachable=True, status=status, answer=answer)
    if not 200 <= status < 300:
        message = answer.get("message") if isinstance(answer, Mapping) else None
        report.error = f"HTTP {status}" + (f": {message}" if message else "")
        return report
    examine(report)
    return report


def examine(report: EndpointReport) -> None:
    """Compare a 2xx answer with the schemas, then run the bridge's parser on it."""
    endpoint, answer = report.endpoint, report.answer
    envelope = s.page(endpoint.schema) if endpoint.many else s.item(endpoint.schema)
    report.fields = compare(envelope, answer)
    data = answer.get("data") if isinstance(answer, Mapping) else None
    objects = data if endpoint.many and isinstance(data, list) else [data]
    if endpoint.many:
        report.items = len(objects)
        if not objects:
            report.notes.append("page 1 is empty: its fields could not be compared")
    if endpoint.parse is None:
        return
    for i, value in enumerate(objects):
        try:
            endpoint.parse(value, f"{endpoint.name}[{i}]" if endpoint.many else endpoint.name)
        except InvalidResponse as exc:
            report.parse_error = exc.message
            return


def advise(report: EndpointReport, options: ProbeOptions) -> None:
    """Notes and the settings that would fix what the report found."""
    name = report.endpoint.name
    if not report.reachable:
        report.fixes.append("SOLUSIO_API_URL (and SOLUSIO_VERIFY_TLS for a private CA)")
        return
    if report.status in (401, 403):
        report.fixes.append("SOLUSIO_API_TOKEN (an admin user's API token)")
        return
    if name == "usage":
        _advise_usage(report, options)
    if report.status != 200 or report.fields is None:
        return
    for gone, new in guess_renames(report.fields):
        report.notes.append(f"{gone} is missing and {new} is extra: renamed?")
    if name == "settings":
        _advise_settings(report, options)
    if name == "plans" and any(f in report.needed_missing for f in _PUT_FIELDS):
        report.notes.append(
            "the price push sends the whole plan back; SolusIO may refuse one without these"
        )
    if name == "servers" and report.fields is not None:
        statuses = {
            m.split(":")[0] for m in report.fields.mistyped if m.startswith("data[].status")
        }
        if statuses:
            report.notes.append(
                "server statuses other than SolusIO's documented ones: observed metering "
                "treats them as running"
            )


def _advise_usage(report: EndpointReport, options: ProbeOptions) -> None:
    if report.status in (404, 405):
        report.fixes.append(
            f"{USAGE_PATH_SETTING} (the bridge asked {options.usage_path}), or "
            f"{USAGE_SOURCE_SETTING}=observed to bill from the servers API"
        )
        return
    filters = (
        f"{USAGE_FROM_SETTING} / {USAGE_TO_SETTING} (the bridge sent "
        f"{options.usage_from_param}, {options.usage_to_param})"
    )
    if report.status in (400, 422):
        report.fixes.append(filters)
        return
    if report.status != 200:
        return
    if report.parse_error or not (report.fields and report.fields.clean):
        report.fixes.append(
            f"{USAGE_SOURCE_SETTING}=observed until the row shape is supported "
            "(send the --save answers to support)"
        )
    outside = rows_outside(report.answer, options.date_from, options.date_to)
    if outside:
        report.notes.append(
            f"{outside} rows lie outside the period asked for: the date filters were ignored?"
        )
        report.fixes.append(filters)


def rows_outside(answer: Any, date_from: str, date_to: str) -> int:
    """How many usage rows of a page lie wholly outside [date_from, date_to): a SolusIO that
    ignores the filter names the bridge sends answers with other months' rows."""
    data = answer.get("data") if isinstance(answer, Mapping) else None
    start, end = _instant(date_from), _instant(date_to)
    if not isinstance(data, list) or start is None or end is None:
        return 0
    count = 0
    for row in data:
        if not isinstance(row, Mapping):
            continue
        began, ended = _instant(row.get("started_at")), _instant(row.get("ended_at"))
        if (began is not None and began >= end) or (ended is not None and ended <= start):
            count += 1
    return count


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _advise_settings(report: EndpointReport, options: ProbeOptions) -> None:
    data = report.answer.get("data") if isinstance(report.answer, Mapping) else None
    billing = data.get("billing_integration") if isinstance(data, Mapping) else None
    if not isinstance(billing, Mapping):
        return
    kind = billing.get("type")
    drivers = billing.get("drivers")
    names = sorted(drivers) if isinstance(drivers, Mapping) else []
    report.notes.append(
        f"billing integration: type {kind!r}, drivers {', '.join(names) or 'none'} "
        f"(the bridge writes type {options.billing_type!r}, driver {options.billing_driver!r})"
    )
    if options.billing_driver not in names:
        report.fixes.append(
            f"SOLUSIO_BILLING_DRIVER (SolusIO has no driver {options.billing_driver!r})"
        )


def _probe_sso(client: SolusIOClient, options: ProbeOptions) -> EndpointReport:
    assert options.sso_email is not None
    try:
        user = client.find_user_by_email(options.sso_email)
    except SolusIOError as exc:
        return EndpointReport(sso_endpoint(0), reachable=False, status=None, error=str(exc))
    if user is None:
        report = EndpointReport(sso_endpoint(0), reachable=True, status=None)
        report.error = "no SolusIO user has that e-mail: no token was created"
        return report
    report = call(client, sso_endpoint(user.id))
    advise(report, options)
    if report.ok and options.login_url_template:
        report.notes.append(
            "login URL: "
            + options.login_url_template.replace("{token}", REDACTED)
            + " (open one by hand to check the route)"
        )
    elif report.ok:
        report.fixes.append("SOLUSIO_LOGIN_URL_TEMPLATE (SolusIO's browser login route)")
    return report


# --- output ---------------------------------------------------------------------------------


def render(reports: list[EndpointReport], *, every_field: bool = False) -> list[str]:
    """The report as text lines, one block per endpoint."""
    lines: list[str] = []
    for report in reports:
        endpoint = report.endpoint
        head = f"{endpoint.name}: {endpoint.method} {endpoint.path}"
        if not report.reachable:
            lines.append(f"[FAIL] {head}: not reachable ({report.error})")
        else:
            verdict = "PASS" if report.ok and not report.needed_missing else "FAIL"
            count = f", {report.items} items" if report.items is not None else ""
            lines.append(f"[{verdict}] {head}: reachable, HTTP {report.status}{count}")
            if report.error:
                lines.append(f"    error: {report.error}")
        lines.extend(_field_lines(report, every_field))
        if report.parse_error:
            lines.append(f"    the bridge cannot read it: {report.parse_error}")
            lines.append(f"    stops: {endpoint.used_for}")
        lines.extend(f"    note: {note}" for note in report.notes)
        lines.extend(f"    fix: set {fix}" for fix in report.fixes)
    return lines


def _field_lines(report: EndpointReport, every_field: bool) -> list[str]:
    diff = report.fields
    if diff is None:
        return []
    needed = {report._path(n) for n in report.endpoint.needed}
    lines = [
        f"    matched: {len(diff.matched)} fields, {len(report.needed_matched())} of the "
        f"{len(needed)} the bridge reads"
    ]
    for path in diff.matched if every_field else ():
        lines.append(f"      = {path}")
    for path in diff.missing:
        lines.append(f"    missing: {path}{' (the bridge reads it)' if path in needed else ''}")
    for problem in diff.mistyped:
        mark = " (the bridge reads it)" if problem.split(":")[0] in needed else ""
        lines.append(f"    wrong type: {problem}{mark}")
    for path in diff.extra:
        lines.append(f"    extra: {path}")
    return lines


def save(reports: list[EndpointReport], directory: Path, text: list[str]) -> list[Path]:
    """Write each raw answer (secrets and e-mail addresses redacted) and the report, for a
    support ticket; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for report in reports:
        endpoint = report.endpoint
        record = {
            "request": {
                "method": endpoint.method,
                "path": endpoint.path,
                "params": dict(endpoint.params),
            },
            "reachable": report.reachable,
            "status": report.status,
            "error": report.error,
            "answer": report.answer,
        }
        slug = endpoint.name.replace(" ", "_")
        target = directory / f"{slug}.json"
        clean = redact_emails(redact(record))
        target.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(target)
    summary = directory / "report.txt"
    summary.write_text(redact_emails("\n".join(text)) + "\n", encoding="utf-8")
    written.append(summary)
    return written
