"""The client address behind trusted proxies, the staff API's failed-authentication
throttle, and the production settings: refusing to start without secrets, https only."""

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from bridge.security import client_ip
from pricing.models import Currency
from pricing.tests.api_helpers import staff_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (0, "1.2.3.4", "10.0.0.2"),  # no trusted proxy: the header is the client's own
        (1, "", "10.0.0.2"),  # did not come through the proxy
        (1, "1.2.3.4", "1.2.3.4"),
        (1, "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the client wrote the first entry
        (2, "6.6.6.6, 1.2.3.4, 10.9.9.9", "1.2.3.4"),
        (2, "1.2.3.4", "10.0.0.2"),  # fewer entries than proxies: not trusted
        (1, "not-an-address", "10.0.0.2"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_believes_only_the_trusted_proxies(
    settings: Any, count: int, forwarded: str, expected: str
) -> None:
    settings.TRUSTED_PROXY_COUNT = count
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_client_ip_reads_the_configured_header(settings: Any) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    settings.TRUSTED_PROXY_HEADER = "X-Real-IP"
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_REAL_IP="1.2.3.4", HTTP_X_FORWARDED_FOR="6.6.6.6"
    )
    assert client_ip(request) == "1.2.3.4"


@pytest.mark.django_db
def test_the_staff_api_refuses_an_address_after_20_failed_authentications(
    usd: Currency, caplog: pytest.LogCaptureFixture
) -> None:
    good = staff_client(Currency, actions=["view"])
    good.defaults["REMOTE_ADDR"] = "203.0.113.5"
    assert good.get("/api/v1/currencies/").status_code == 200
    bad = APIClient(REMOTE_ADDR="203.0.113.5")
    bad.credentials(HTTP_AUTHORIZATION="Token wrong-key")
    with caplog.at_level(logging.WARNING, logger="bridge.security"):
        answers = [bad.get("/api/v1/currencies/").status_code for _ in range(30)]
    assert answers[:20] == [401] * 20
    assert set(answers[20:]) == {429}
    refused = good.get("/api/v1/currencies/")  # the right key, from the same address
    assert refused.status_code == 429
    assert refused.json()["message"].startswith("Too many failed authentications")
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.security"]
    assert lines[0] == "staff API: failed authentication from 203.0.113.5 (1 in the window)"
    good.defaults["REMOTE_ADDR"] = "203.0.113.6"
    assert good.get("/api/v1/currencies/").status_code == 200


def start_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """Load bridge.settings in a fresh process with only `env` set (plus what Python needs)."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_PROXY_SSL_HEADER)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "bridge.settings",
            "BRIDGE_VAR_DIR": os.environ.get("BRIDGE_VAR_DIR", str(ROOT / "var")),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


SECRETS = {"DJANGO_SECRET_KEY": "k" * 50, "PRICING_API_TOKEN": "t"}


@pytest.mark.parametrize(
    ("env", "refusals"),
    [
        ({}, ["DJANGO_SECRET_KEY is not set", "PRICING_API_TOKEN is not set"]),
        ({"DJANGO_DEBUG": "0", "PRICING_API_TOKEN": "t"}, ["DJANGO_SECRET_KEY is not set"]),
        ({"DJANGO_SECRET_KEY": "k" * 50}, ["PRICING_API_TOKEN is not set"]),
    ],
)
def test_production_refuses_to_start_without_its_secrets(
    env: dict[str, str], refusals: list[str]
) -> None:
    done = start_settings(**env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(refusals)  # one line each
    assert all(line.startswith(r) for line, r in zip(lines, refusals, strict=True))
    assert "Traceback" not in done.stderr


def test_development_mode_and_a_configured_production_start() -> None:
    assert start_settings(DJANGO_DEBUG="1").returncode == 0
    done = start_settings(**SECRETS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "0", "None"]


def test_https_means_secure_cookies_and_hsts() -> None:
    done = start_settings(**SECRETS, BRIDGE_PUBLIC_URL="https://billing.example.net")
    assert done.stdout.split() == ["True", "True", "31536000", "None"]
    behind_proxy = start_settings(
        **SECRETS, BRIDGE_PUBLIC_URL="https://billing.example.net", TRUSTED_PROXY_COUNT="1"
    )
    assert behind_proxy.stdout.strip() == "True True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https')"
