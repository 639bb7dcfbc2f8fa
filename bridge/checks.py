"""System checks for production secrets (run by `manage.py check --deploy`)."""

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


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
    return problems
