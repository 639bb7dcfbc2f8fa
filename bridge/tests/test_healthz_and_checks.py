import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings

from bridge.tasks import heartbeat


@pytest.mark.django_db
def test_healthz_reports_database_cache_and_worker_heartbeat(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "ok"
    assert body["checks"]["worker_heartbeat_age_seconds"] == "never"
    heartbeat()
    body = json.loads(client.get("/healthz").content)
    assert body["checks"]["worker_heartbeat_age_seconds"] in ("0", "1")


@pytest.mark.django_db
def test_healthz_is_503_when_the_cache_is_down(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.cache.backends.redis import RedisCache

    monkeypatch.setattr("bridge.views.cache", RedisCache("redis://127.0.0.1:1/0", {}))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert json.loads(response.content)["checks"]["cache"].startswith("error")


def test_ping_is_trivial_json(client: Client) -> None:
    assert json.loads(client.get("/ping").content) == {"ok": True}


@override_settings(
    PRICING_API_TOKEN="",
    SECRET_KEY="insecure-embedded-default-do-not-use-in-production",
    SOLUSIO_API_URL="https://solusio.example.com",
    SOLUSIO_API_TOKEN="",
)
def test_check_deploy_flags_missing_production_secrets() -> None:
    with pytest.raises(SystemCheckError) as failure:
        call_command("check", "--deploy", "--fail-level", "WARNING", "--tag", "security")
    for check_id in ("bridge.W001", "bridge.W002", "bridge.W003"):
        assert check_id in str(failure.value)


@pytest.mark.parametrize(
    "backend",
    ["django.core.mail.backends.console.EmailBackend", "bridge.console.EmailBackend"],
)
def test_check_deploy_flags_e_mail_that_is_not_sent_and_no_public_address(backend: str) -> None:
    from bridge.checks import check_bridge_secrets

    with override_settings(EMAIL_BACKEND=backend, BRIDGE_PUBLIC_URL=""):
        found = {w.id for w in check_bridge_secrets()}
    assert {"bridge.W005", "bridge.W006"} <= found


@override_settings(
    PRICING_API_TOKEN="s3cret",
    SECRET_KEY="x" * 60,
    SOLUSIO_API_URL="",
    SOLUSIO_API_TOKEN="",
    EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
    BRIDGE_PUBLIC_URL="https://billing.example.net",
    METRICS_TOKEN="m",
)
def test_check_deploy_is_quiet_about_bridge_secrets_when_set() -> None:
    from bridge.checks import check_bridge_secrets

    assert check_bridge_secrets() == []


@pytest.mark.parametrize(
    ("template", "ids"),
    [
        ("", ["bridge.E010"]),
        ("https://solusio.example.com/auth/by_token", ["bridge.E011"]),
        ("https://solusio.example.com/auth/by_token?token={token}", []),
    ],
)
def test_check_deploy_errors_without_a_single_sign_on_url(template: str, ids: list[str]) -> None:
    from bridge.checks import check_single_sign_on

    with override_settings(SOLUSIO_LOGIN_URL_TEMPLATE=template):
        assert [e.id for e in check_single_sign_on()] == ids


@override_settings(SOLUSIO_LOGIN_URL_TEMPLATE="")
def test_production_mode_fails_without_a_single_sign_on_url() -> None:
    # An error, not a warning: check --deploy fails at its default level.
    with pytest.raises(SystemCheckError, match=r"bridge\.E010"):
        call_command("check", "--deploy", stdout=StringIO(), stderr=StringIO())
    call_command("check", stdout=StringIO(), stderr=StringIO())  # development is not held up


@override_settings(PUBLIC_URL_IS_HTTPS=True, TRUSTED_PROXY_COUNT=0)
def test_check_deploy_flags_https_without_a_trusted_proxy() -> None:
    from bridge.checks import check_bridge_secrets

    assert "bridge.W007" in {w.id for w in check_bridge_secrets()}
    with override_settings(TRUSTED_PROXY_COUNT=1):
        assert "bridge.W007" not in {w.id for w in check_bridge_secrets()}
