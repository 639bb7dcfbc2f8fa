"""Single sign-on into the SolusIO user area (Step 9): a one-time token for the customer's own
SolusIO user, taken from the sync link and never from the request; every attempt is audited,
the token never logged or stored."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

from solusio.connect import solusio_client
from solusio.errors import NotFound, SolusIOError
from users.models import Customer, CustomerStatus, LoginAudit, SolusioAccount


class LoginRefused(Exception):
    """No token for this customer; `message` is safe to show them (in the active language,
    which on the portal is the customer's)."""

    def __init__(self, outcome: str, message: str) -> None:
        self.outcome = outcome
        self.message = message
        super().__init__(message)


def login_url_template() -> str:
    """The setting, or (assumed, DESIGN §4) SolusIO's host with /auth/by_token."""
    if settings.SOLUSIO_LOGIN_URL_TEMPLATE:
        return settings.SOLUSIO_LOGIN_URL_TEMPLATE
    parts = urlsplit(settings.SOLUSIO_API_URL)
    return f"{parts.scheme}://{parts.netloc}/auth/by_token?token={{token}}"


def login_url(
    *,
    customer: Customer,
    staff_user: object | None = None,
    remote_addr: str | None = None,
) -> str:
    """A one-time login URL into the customer's SolusIO user area; LoginRefused if the
    customer may not have one now. Audited either way."""
    staff_username = getattr(staff_user, "get_username", lambda: "")()
    audit = LoginAudit(
        customer_id=customer.pk,
        staff_user=staff_user if staff_username else None,  # type: ignore[misc]
        staff_username=staff_username,
        remote_addr=remote_addr or None,
    )
    try:
        url = _login_url(customer)
    except LoginRefused as exc:
        audit.outcome, audit.detail = exc.outcome, exc.message[:255]
        audit.save()
        raise
    audit.outcome = "redirected"
    audit.save()
    return url


def _login_url(customer: Customer) -> str:
    if customer.status == CustomerStatus.SUSPENDED:
        raise LoginRefused(
            "suspended", _("Your account is suspended. Please contact billing to reactivate it.")
        )
    if customer.status == CustomerStatus.LOCKED:
        raise LoginRefused("locked", _("Your account is locked. Please contact support."))
    account = SolusioAccount.objects.filter(customer_id=customer.pk).first()
    if account is None or account.solusio_user_id is None:
        raise LoginRefused(
            "not_synced", _("Your control panel account is still being set up; try again shortly.")
        )
    try:
        with solusio_client() as client:
            token = client.create_login_token(account.solusio_user_id)
    except NotFound:
        raise LoginRefused(
            "not_found", _("Your control panel account is being repaired; try again shortly.")
        ) from None
    except SolusIOError as exc:
        # The message is the client's, which never carries the token (none was issued).
        raise LoginRefused(
            "solusio_error", _("The control panel is not reachable right now; try again shortly.")
        ) from exc
    return login_url_template().replace("{token}", quote(token, safe=""))
