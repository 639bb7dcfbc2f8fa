"""Pure pieces: the assumed usage shape's edge cases, Retry-After, redaction."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

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
        ({"item": "snapshot"}, "unknown usage item"),
        ({"item": "additional_ip"}, "ip_tokens_per_hour"),
        ({"hours": -1}, "negative"),
        ({"hours": 1.5}, "integer"),
        ({"started_at": "yesterday"}, "ISO 8601"),
        ({"user": None}, "user"),
        ({"tokens": "12"}, "tokens"),
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
