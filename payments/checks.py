"""`manage.py check`: online payment half-configured says so, rather than staying off."""

from typing import Any

from django.conf import settings
from django.core.checks import Warning


def check_stripe_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    key, secret = settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET
    if bool(key) != bool(secret):
        missing = "STRIPE_WEBHOOK_SECRET" if key else "STRIPE_SECRET_KEY"
        return [
            Warning(
                f"{missing} is not set, so online payment is off: it needs both the secret "
                "key and the webhook endpoint's signing secret.",
                id="payments.W001",
            )
        ]
    if key and not settings.BRIDGE_PUBLIC_URL:
        return [
            Warning(
                "BRIDGE_PUBLIC_URL is not set: invoice e-mails and PDFs carry no pay link "
                "(the portal's Pay now button still works).",
                id="payments.W002",
            )
        ]
    return []
