"""SolusIO's browser login route (`/auth/by_token?token=…`), where "Open control panel"
sends a customer: a one-time token from `POST /users/{id}/tokens` opens a small page."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solusio.simulator.state import SimState

LOGIN_PATH = "/auth/by_token"  # the default of SOLUSIO_LOGIN_URL_TEMPLATE (users.sso)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - SolusIO (simulator)</title>
<style>body {{ font: 16px/1.5 system-ui, sans-serif; margin: 3rem auto; max-width: 36rem; }}
</style></head>
<body><h1>{title}</h1><p>{message}</p></body></html>
"""


def login_page(state: SimState, token: str) -> tuple[int, bytes]:
    """Status and HTML for a browser arriving with `token`; a token opens one page only."""
    with state.lock:
        uid = state.tokens.pop(token, None) if token else None
        user = state.users.get(uid) if uid is not None else None
    if user is None:
        title, message = "Login link not valid", "This login link was used already or is unknown."
        return 401, _PAGE.format(title=title, message=message).encode()
    message = f"Signed in as {escape(user['email'])} (user #{uid})."
    return 200, _PAGE.format(title="SolusIO user area", message=message).encode()
