"""Customer portal passwords (/account/): set by staff, or reset by the customer by e-mail with
a token carried in the URL's fragment, so it reaches no server log (docs/architecture.md)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import User
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.cache import cache
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from users import services
from users.models import Customer

log = logging.getLogger(__name__)

# At most one reset e-mail per address in this many seconds (no mail-bombing a customer).
RESEND_AFTER = 60


class PortalTokenGenerator(PasswordResetTokenGenerator):
    """Django's reset tokens, salted apart from any other use of them."""

    key_salt = "users.passwords.PortalTokenGenerator"


token_generator = PortalTokenGenerator()


def portal_user_for(customer: Customer) -> User:
    """The customer's portal login, or an unsaved stand-in with its username and e-mail
    (what password validators compare a new password with)."""
    if customer.user is not None:
        return customer.user
    return User(username=services.portal_username(customer.pk), email=customer.email)


def reset_key(customer: Customer) -> str:
    """`<customer id, base64>.<token>`: what the e-mailed link carries after the #."""
    user = services.ensure_portal_login(customer_id=customer.pk)
    return f"{urlsafe_base64_encode(force_bytes(customer.pk))}.{token_generator.make_token(user)}"


@dataclass(frozen=True)
class ResetTarget:
    customer: Customer
    user: AbstractBaseUser


def check_reset_key(key: str) -> ResetTarget | None:
    """The customer a key is good for now, or None (malformed, unknown, used, expired)."""
    uid, _, token = key.strip().partition(".")
    if not uid or not token:
        return None
    try:
        customer_id = int(force_str(urlsafe_base64_decode(uid)))
    except (ValueError, TypeError, OverflowError):
        return None
    if not 1 <= customer_id < 2**63:  # past a bigint the database would refuse the query
        return None
    customer = Customer.objects.filter(pk=customer_id, user__isnull=False).first()
    if customer is None or customer.user is None:
        return None
    if not customer.user.is_active or not token_generator.check_token(customer.user, token):
        return None
    return ResetTarget(customer=customer, user=customer.user)


def request_reset(*, email: str, reset_url: str) -> None:
    """Ask a worker to e-mail a reset link to the customer with this address, if any.

    The request itself does the same work for every address — one lookup, one queued
    message (with no customer for an unknown one) — so neither the answer nor its timing
    tells whether an address is a customer's; the token is made and the e-mail sent by
    the worker (`send_reset`), so the token never travels through the broker and a slow
    SMTP server never holds up a web worker. Never raises: the page answers the same.
    """
    from users.tasks import send_portal_reset

    address = email.strip().lower()
    throttle = "portal-reset:" + hashlib.sha256(address.encode()).hexdigest()
    try:
        if not cache.add(throttle, 1, timeout=RESEND_AFTER):
            return
    except Exception:  # noqa: BLE001 - the cache is down: send unthrottled, never a 500
        log.warning("portal: reset throttle unavailable (cache down); sending anyway")
    customer_id = (
        Customer.objects.filter(email__iexact=address).values_list("pk", flat=True).first()
    )
    try:
        send_portal_reset.delay(customer_id, reset_url)
    except Exception as exc:  # noqa: BLE001 - broker down: say so, the customer asks again
        log.warning("portal: could not queue a reset e-mail (%s)", type(exc).__name__)
        with contextlib.suppress(Exception):
            cache.delete(throttle)  # nothing was sent: asking again must not wait a minute


def send_reset(*, customer_id: int | None, reset_url: str) -> bool:
    """The worker's half of request_reset: make the key and send the e-mail. Returns
    whether one was sent. A failed send is logged without the link."""
    customer = Customer.objects.filter(pk=customer_id).first() if customer_id else None
    if customer is None:
        return False
    context = {
        "customer": customer,
        "link": f"{reset_url}#{reset_key(customer)}",
        "valid_minutes": max(1, settings.PASSWORD_RESET_TIMEOUT // 60),
    }
    try:
        with translation.override(customer.language):
            subject = render_to_string("account/reset_email_subject.txt", context).strip()
            body = render_to_string("account/reset_email.txt", context)
        send_mail(
            subject=subject,
            message=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[customer.email],
        )
    except Exception as exc:  # noqa: BLE001 - SMTP down: say so, never the link
        log.warning(
            "portal: could not send the reset e-mail to customer %s (%s)",
            customer.pk,
            type(exc).__name__,
        )
        return False
    return True
