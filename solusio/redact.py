"""Redaction of secrets before anything is logged or recorded.

Shared by the client (its logs) and the simulator (its call log), so a password or a token
sent to SolusIO never lands in a log file, a test report or a CI artefact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

# Key names whose values are secrets wherever they appear: user passwords, the billing
# integration's shared token (settings.billing_integration.drivers.*.token), SSO tokens.
_SECRET_MARKERS = ("password", "secret", "authorization", "api_key", "apikey")
# "token" only as a word of the key: `access_token` is a secret, `tokens_per_hour` a price.
_SECRET_WORDS = frozenset({"token"})
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
EMAIL_REDACTED = "***@***"


def is_secret_key(key: str) -> bool:
    lowered = re.sub(r"[^a-z0-9]+", "_", key.lower())
    if any(marker in lowered for marker in _SECRET_MARKERS):
        return True
    return not _SECRET_WORDS.isdisjoint(lowered.split("_"))


def redact(value: Any) -> Any:
    """A deep copy of `value` with the values of secret-looking keys replaced."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def redact_emails(value: Any) -> Any:
    """A deep copy of `value` with every e-mail address in its strings replaced (for what
    leaves the company, e.g. a support ticket: addresses are personal data)."""
    if isinstance(value, Mapping):
        return {k: redact_emails(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_emails(v) for v in value]
    if isinstance(value, str):
        return _EMAIL.sub(EMAIL_REDACTED, value)
    return value


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if is_secret_key(k) else v) for k, v in headers.items()}
