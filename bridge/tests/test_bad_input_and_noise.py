"""Bad input is a 400, and a database outage or an invoice e-mail does not flood the log."""

import io
import logging

import pytest
from django.db import OperationalError
from django.test import Client

from bridge.console import EmailBackend
from bridge.outage import OutageLog
from pricing.models import Discount
from pricing.tests.api_helpers import body, staff_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("data", [b"[" * 2000, b'{"a":' * 2000])
def test_deeply_nested_json_to_the_staff_api_is_a_400(data: bytes) -> None:
    api = staff_client(Discount)
    response = api.post("/api/v1/discounts/", data=data, content_type="application/json")
    assert response.status_code == 400
    assert body(response) == {"message": "JSON parse error - nested too deeply.", "errors": {}}


def _broken(*args: object, **kwargs: object) -> None:
    raise OperationalError('connection to server at "db" failed: Connection refused\n\tIs it up?')


def test_a_database_outage_logs_one_line_per_503_and_a_summary_a_minute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    outage = OutageLog(every=60, clock=lambda: now[0])
    monkeypatch.setattr("pricing.views.database_unavailable", outage)
    monkeypatch.setattr("bridge.api.database_unavailable", outage)
    monkeypatch.setattr("pricing.services.token_pricing", _broken)
    monkeypatch.setattr("pricing.api.DiscountViewSet.get_queryset", _broken)
    caplog.set_level(logging.INFO)
    pricing = {"token": "test-pricing-token", "action": "GetTokenPricing", "userid": 1}
    api = staff_client(Discount)

    for _ in range(5):
        assert Client().post("/api/solusio", data=pricing).status_code == 503
    now[0] += 61
    for _ in range(2):
        assert api.get("/api/v1/discounts/").status_code == 503

    lines = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in lines] == 5 * [
        'GetTokenPricing: 503, database unavailable (OperationalError: connection to server at "db"'
        " failed: Connection refused Is it up?)"
    ] + 2 * [
        'staff API: 503, database unavailable (OperationalError: connection to server at "db"'
        " failed: Connection refused Is it up?)"
    ]
    summaries = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in summaries] == [
        "database unavailable: 1 request(s) answered 503 (GetTokenPricing 1); next summary in "
        "60 s at the earliest",
        "database unavailable: 5 request(s) answered 503 in the last 61 s (GetTokenPricing 4, "
        "staff API 1); next summary in 60 s at the earliest",
    ]
    assert all(r.exc_info for r in summaries)  # a traceback a minute, not one per request
    assert all(r.exc_info is None for r in lines)
    assert not [r for r in caplog.records if r.name == "django.request"]  # no second line


def test_the_console_backend_prints_the_text_and_names_the_attachment() -> None:
    from django.core.mail import EmailMessage

    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 200
    message = EmailMessage(
        subject="Invoice INV-000001 for October 2026",
        body="Hello Jane,\n\nyour invoice INV-000001 is attached.\nTotal: £5.00 GBP",
        from_email="billing@example.net",
        to=["jane@example.co.uk"],
    )
    message.attach("INV-000001.pdf", pdf, "application/pdf")
    stream = io.StringIO()
    assert EmailBackend(stream=stream).send_messages([message]) == 1
    out = stream.getvalue()
    assert "Subject: Invoice INV-000001 for October 2026" in out
    assert "To: jane@example.co.uk" in out
    assert "your invoice INV-000001 is attached.\nTotal: £5.00 GBP" in out
    assert f"[attachment: INV-000001.pdf, application/pdf, {len(pdf)} bytes]" in out
    assert "JVBER" not in out  # "%PDF" in base64: the body is not printed
    assert len(out) < 600


def test_the_default_e_mail_url_uses_our_console_backend() -> None:
    import bridge.settings

    # The suite does not set EMAIL_URL, so the settings module took the consolemail default.
    assert bridge.settings.EMAIL_CONFIG["EMAIL_BACKEND"] == "bridge.console.EmailBackend"
