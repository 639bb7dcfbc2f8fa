"""Staff API keys: made with a secret shown once, stored as a digest, expiring and revocable;
and the DRF authentication that checks them."""

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from bridge.models import PREFIX_LENGTH, ApiKey

# last_used_at is a hint for staff clearing out old keys: written at most this often, so
# a busy script does not turn every API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def digest_of(key: str) -> str:
    # A fast hash is enough: keys are 240 random bits, so there is nothing to guess
    # offline, unlike a password.
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    *, user: Any, name: str = "", expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """A new key for `user`; returns the row and the key, which is never stored."""
    key = secrets.token_urlsafe(30)
    row = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=key[:PREFIX_LENGTH],
        digest=digest_of(key),
        expires_at=expires_at,
    )
    return row, key


def revoke_api_keys(*, key_ids: list[int]) -> int:
    """Revoke the keys not revoked yet; returns how many."""
    return ApiKey.objects.filter(pk__in=key_ids, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def active_key(key: str) -> ApiKey | None:
    """The unrevoked, unexpired key `key` is, with its user; None otherwise."""
    now = timezone.now()
    found = ApiKey.objects.select_related("user").filter(digest=digest_of(key)).first()
    if found is None or found.state(now) != "active":
        return None
    if found.last_used_at is None or found.last_used_at < now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=found.pk).update(last_used_at=now)
    return found


class ApiKeyAuthentication(authentication.TokenAuthentication):
    """The header DRF's TokenAuthentication reads (`Authorization: Token <key>`), checked
    against the stored digests instead of plain keys."""

    def authenticate_credentials(self, key: str) -> tuple[Any, ApiKey]:
        found = active_key(key)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not found.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return found.user, found
