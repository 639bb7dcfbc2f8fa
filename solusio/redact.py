"""Redaction of secrets before anything is logged or recorded.

Shared by the client (its logs) and the simulator (its call log), so a password or a token
sent to SolusIO never lands in a log file, a test report or a CI artefact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REDACTED = "***"

# Key names whose values are secrets wherever they appear: user passwords, the billing
# integration's shared token (settings.billing_integration.drivers.*.token), SSO tokens.
_SECRET_MARKERS = ("password", "token", "secret", "authorization", "api_key")


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


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


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if is_secret_key(k) else v) for k, v in headers.items()}
