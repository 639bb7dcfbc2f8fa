"""The portal's stylesheet is the app's own static file, served by whitenoise (no CDN)."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_portal_pages_link_the_stylesheet_and_it_is_served(client: Client) -> None:
    page = client.get("/account/login/").content.decode()
    assert '<link rel="stylesheet" href="/static/account/portal.css">' in page
    assert "<style>" not in page
    assert "//" not in page.split("<body>")[0].replace("http-equiv", "")  # nothing external
    css = client.get("/static/account/portal.css")
    assert css.status_code == 200
    assert css["Content-Type"].startswith("text/css")
    body = b"".join(css.streaming_content).decode()  # type: ignore[attr-defined]
    assert "@media (max-width: 600px)" in body
    assert "attr(data-label)" in body
