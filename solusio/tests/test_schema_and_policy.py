"""Pure pieces: the assumed usage shape's edge cases, Retry-After, redaction."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from solusio import usage_schema
from solusio.redact import redact, redact_emails, redact_headers
from solusio.retry import RetryPolicy, parse_retry_after
from solusio.tests import contract
from solusio.usage_schema import UsageSchemaError, parse_usage_row


def row(**changes: object) -> dict:
    base = contract.example(contract.USAGE_ROW)
    base.update(changes)
    return base


def test_usage_row_without_offset_is_read_as_utc() -> None:
    parsed = parse_usage_row(row(started_at="2025-01-01T10:00:00", ended_at=None))
    assert parsed.started_at == datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert parsed.ended_at is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"item": "additional_ip"}, "ip_tokens_per_hour"),
        ({"item": "backup"}, "backup_price"),
        ({"item": ""}, "item"),
        ({"item": "k" * 65}, "item"),
        ({"hours": -1}, "0 or more"),
        ({"hours": "lots"}, "hours"),
        ({"hours": True}, "hours"),
        ({"started_at": "yesterday"}, "ISO 8601"),
        ({"user": None}, "user"),
        ({"server": {"id": "srv-1", "uuid": "u", "name": "n"}}, "server.id"),
        ({"tokens": "twelve"}, "tokens"),
    ],
)
def test_usage_rows_that_break_the_assumed_shape_are_refused_clearly(
    changes: dict, message: str
) -> None:
    with pytest.raises(UsageSchemaError, match=message):
        parse_usage_row(row(**changes))


def test_whole_floats_are_integers_as_the_go_sdk_reads_them() -> None:
    parsed = parse_usage_row(row(hours=3.0, tokens=21.0))
    assert (parsed.hours, parsed.tokens) == (3, 21)
    assert isinstance(parsed.hours, int)


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_stays_within_its_jitter_band() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=10, jitter=0.5)
    for n in range(1, 8):
        ceiling = min(10, 0.1 * 2 ** (n - 1))
        for _ in range(50):
            assert ceiling / 2 <= policy.backoff(n) <= ceiling


def test_email_addresses_are_redacted_in_every_string() -> None:
    page = {"data": [{"email": "Jane.Doe+x@mail.example.co.uk", "note": "ask bob@ex.test now"}]}
    assert redact_emails(page) == {"data": [{"email": "***@***", "note": "ask ***@*** now"}]}
    assert redact_emails({"n": 1, "url": "https://h.example/x"}) == {
        "n": 1,
        "url": "https://h.example/x",
    }


def test_redaction_reaches_nested_secrets() -> None:
    body = {
        "email": "a@example.test",
        "password": "p",
        "billing_integration": {"drivers": {"whmcs": {"url": "u", "token": "t"}}},
        "list": [{"access_token": "x"}],
    }
    assert redact(body) == {
        "email": "a@example.test",
        "password": "***",
        "billing_integration": {"drivers": {"whmcs": {"url": "u", "token": "***"}}},
        "list": [{"access_token": "***"}],
    }
    assert body["password"] == "p"  # a copy, the original untouched
    # Token prices are not secrets; tokens and keys by any other name are.
    assert redact({"tokens_per_hour": 7, "ip_tokens_per_month": 9, "billing_token": "b"}) == {
        "tokens_per_hour": 7,
        "ip_tokens_per_month": 9,
        "billing_token": "***",
    }
    assert redact({"X-Api-Key": "k", "client_secret": "s", "apiKey": "a"}) == {
        "X-Api-Key": "***",
        "client_secret": "***",
        "apiKey": "***",
    }
    assert redact_headers({"Authorization": "Bearer s", "Accept": "a"}) == {
        "Authorization": "***",
        "Accept": "a",
    }


def test_an_unknown_item_kind_is_kept_as_written() -> None:
    parsed = parse_usage_row(row(item="Snapshot storage"))
    assert (parsed.item, parsed.known, parsed.backup_price) == ("Snapshot storage", False, None)
    assert parse_usage_row(row(item="server")).known


# A value of every JSON type a field might carry, plain or not.
_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(0, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " 7 ", "42", "x", "2025-01-01T10:00:00+00:00", "2025-01-01T10:00:00"]),
    st.lists(st.integers(), max_size=1),
    st.dictionaries(st.sampled_from(["id"]), st.integers(), max_size=1),
)
_ITEMS = st.sampled_from(["server", "additional_ip", "backup", "gpu"]) | st.sampled_from(
    ["", "k" * 65]
)
_MISSING = object()


@st.composite
def usage_rows(draw: st.DrawFn) -> object:
    """Rows near the assumed shape: any field changed to any value, or left out."""
    value = row(item=draw(_ITEMS))
    value["plan"].update(ip_tokens_per_hour=1, ip_tokens_per_month=500, backup_price=12.5)
    for path in draw(st.lists(st.sampled_from(_PATHS), min_size=1, max_size=2)):
        *parents, key = path
        target: Any = value
        for parent in parents:
            target = target.get(parent) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        changed = draw(st.one_of(_ANY, st.just(_MISSING)))
        if changed is _MISSING:
            target.pop(key, None)
        else:
            target[key] = changed
    return value


_PATHS = [
    ("user",), ("server",), ("plan",), ("item",), ("hours",), ("started_at",), ("ended_at",),
    ("tokens",), ("user", "id"), ("user", "billing_user_id"), ("server", "id"),
    ("server", "uuid"), ("server", "name"), ("plan", "id"), ("plan", "name"),
    ("plan", "tokens_per_hour"), ("plan", "tokens_per_month"), ("plan", "ip_tokens_per_hour"),
    ("plan", "ip_tokens_per_month"), ("plan", "backup_price"),
]  # fmt: skip


def _edge(item: str = "server", **plan: object) -> Callable[..., Any]:
    """An explicit example: a plain row but for one field at the edge of what is read."""

    def changed(**fields: object) -> Any:
        value = row(item=item, **fields)
        value["plan"].update(plan)
        return example(value)

    return changed


@settings(max_examples=1000)
@given(usage_rows())
@_edge()(hours=-1)
@_edge()(hours=True)
@_edge()(tokens=False)
@_edge()(hours=2.5)
@_edge(backup_price=-1)()
@_edge("backup", backup_price=float("inf"))()
@_edge("backup")()
@_edge("additional_ip", ip_tokens_per_hour=1)()
@_edge()(user={"id": "7", "billing_user_id": None})
@_edge()(ended_at="tomorrow")
def test_the_fast_reading_of_a_plain_row_is_the_careful_one(value: object) -> None:
    """`_plain` reads only rows written the plain way, and reads them as `_parse` does;
    anything else is left to `_parse` (which then reads or refuses it)."""
    plain = usage_schema._plain(value)
    if plain is None:
        return
    assert plain == usage_schema._parse(value, "usage")


def test_the_simulators_rows_are_plain() -> None:
    for item in ("server", "additional_ip", "backup"):
        value = row(item=item)
        value["plan"].update(ip_tokens_per_hour=1, ip_tokens_per_month=500, backup_price=12.5)
        assert usage_schema._plain(value) == usage_schema._parse(value, "usage") is not None
