"""System checks: production secrets (`manage.py check --deploy`) and the SolusIO setup
(`manage.py check --tag solusio`)."""

import sys
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_bridge_secrets(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    problems: list[Warning] = []
    if settings.SECRET_KEY == settings.INSECURE_DEFAULT_SECRET_KEY:
        problems.append(
            Warning(
                "DJANGO_SECRET_KEY is not set; the embedded default is public.",
                hint="Set DJANGO_SECRET_KEY to a long random value.",
                id="bridge.W001",
            )
        )
    if not settings.PRICING_API_TOKEN:
        problems.append(
            Warning(
                "PRICING_API_TOKEN is not set; anyone can call GetTokenPricing.",
                hint="Set PRICING_API_TOKEN and paste the same value into SolusIO "
                "Settings > Billing Integration (Step 7).",
                id="bridge.W002",
            )
        )
    if settings.SOLUSIO_API_URL and not settings.SOLUSIO_API_TOKEN:
        problems.append(
            Warning(
                "SOLUSIO_API_URL is set but SOLUSIO_API_TOKEN is not.",
                hint="Create an API token for an admin user in SolusIO and set SOLUSIO_API_TOKEN.",
                id="bridge.W003",
            )
        )
    if settings.SOLUSIO_API_URL and not settings.SOLUSIO_VERIFY_TLS:
        problems.append(
            Warning(
                "SOLUSIO_VERIFY_TLS is off; the SolusIO API token travels unverified.",
                id="bridge.W004",
            )
        )
    if settings.EMAIL_BACKEND.rsplit(".", 2)[-2] in _UNSENT_EMAIL_BACKENDS:
        problems.append(
            Warning(
                "EMAIL_URL is not set: invoice and password-reset e-mails are printed or "
                "dropped, not sent, yet recorded as sent.",
                hint="Set EMAIL_URL, e.g. smtp+tls://user:password@mail.example.com:587 "
                "(or turn Billing settings > E-mail invoices off).",
                id="bridge.W005",
            )
        )
    if not settings.BRIDGE_PUBLIC_URL:
        problems.append(
            Warning(
                "BRIDGE_PUBLIC_URL is not set.",
                hint="Set it to the bridge's public https address: the setup doctor checks "
                "SolusIO's billing integration against it and password-reset links use it.",
                id="bridge.W006",
            )
        )
    if settings.PUBLIC_URL_IS_HTTPS and settings.TRUSTED_PROXY_COUNT == 0:
        problems.append(
            Warning(
                "BRIDGE_PUBLIC_URL is https but TRUSTED_PROXY_COUNT is 0.",
                hint="Behind a reverse proxy that ends TLS, set TRUSTED_PROXY_COUNT=1: "
                "otherwise every client has the proxy's address (one attacker locks all "
                "sign-ins out) and HSTS is never sent.",
                id="bridge.W007",
            )
        )
    if not settings.METRICS_TOKEN and not settings.METRICS_INTERNAL_ONLY:
        problems.append(
            Warning(
                "Neither METRICS_TOKEN nor METRICS_INTERNAL_ONLY is set: /metrics answers 403.",
                hint="Set METRICS_TOKEN (Prometheus sends it as a bearer token), or "
                "METRICS_INTERNAL_ONLY=1 when Prometheus scrapes the web service directly "
                "on a private network.",
                id="bridge.W008",
            )
        )
    return problems


@register(Tags.security, deploy=True)
def check_single_sign_on(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The browser login route is assumed (DESIGN §4): production must name it, not rely
    on the guessed default, or "log in to SolusIO" may lead every customer to a 404."""
    template = settings.SOLUSIO_LOGIN_URL_TEMPLATE
    if not template:
        return [
            Error(
                "SOLUSIO_LOGIN_URL_TEMPLATE is not set; single sign-on would guess SolusIO's "
                "browser login route.",
                hint="Set it to the URL that logs a browser in with a one-time token, e.g. "
                "https://SOLUSIO-HOST/auth/by_token?token={token} (check it once with "
                "`manage.py solusio_probe --sso TEST-USER-EMAIL`).",
                id="bridge.E010",
            )
        ]
    if "{token}" not in template:
        return [
            Error(
                "SOLUSIO_LOGIN_URL_TEMPLATE has no {token} placeholder.",
                hint="The one-time token replaces {token}, e.g. ...?token={token}.",
                id="bridge.E011",
            )
        ]
    return []


# django.core.mail.backends.<module>.EmailBackend that deliver nothing to anyone.
_UNSENT_EMAIL_BACKENDS = frozenset({"console", "locmem", "dummy", "filebased"})


def _solusio_checks_requested() -> bool:
    """Whether `manage.py check` was asked for the solusio tag (or the setting says always).

    The checks call SolusIO; run with every `migrate` or `runserver`, a SolusIO outage
    would block them. Django does not tell a check which tags were asked for, hence argv.
    """
    if settings.SOLUSIO_CHECKS_ALWAYS:
        return True
    argv = sys.argv[1:]
    if "check" not in argv:
        return False
    tags = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in ("--tag", "-t")] + [
        arg.split("=", 1)[1] for arg in argv if arg.startswith("--tag=")
    ]
    return "solusio" in tags


@register("solusio")
def check_solusio_setup(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The setup doctor's checks (seed Steps 3, 4, 5, 7) against the live SolusIO."""
    if not _solusio_checks_requested():
        return []
    from bridge import doctor

    return [
        Error(f"{f.step}: {f.message}", hint=f.hint or None, id=f"bridge.E{f.code}")
        for f in doctor.run()
        if not f.ok
    ]
