"""The staff API's Swagger UI and Redoc render in a real browser, from this server alone."""

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, Request, expect
from pytest_django.live_server_helper import LiveServer

from pricing.models import TaxRule
from pricing.tests.api_helpers import make_user
from tests.browser.conftest import PASSWORD, SCREENSHOTS

Shot = Callable[[Page, str], Path]


def test_swagger_and_redoc_list_the_operations(
    page: Page, live_server: LiveServer, transactional_db: None, shot: Shot
) -> None:
    user = make_user("tax-reader", models=[TaxRule], actions=["view"])
    user.set_password(PASSWORD)
    user.save()
    elsewhere: list[Request] = []
    here = (live_server.url, f"blob:{live_server.url}", "data:")
    page.on("request", lambda r: None if r.url.startswith(here) else elsewhere.append(r))
    # Not signed in: the admin's login, then back to the docs.
    page.goto(live_server.url + "/api/v1/docs/")
    page.locator("input[name=username]").fill(user.username)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(live_server.url + "/api/v1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("staff API")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    assert operations.count() > 50
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/pricing-settings/").first)
    # An operation opens with its example response.
    page.locator("#operations-tax-rules-tax_rules_list .opblock-summary").click()
    expect(page.locator("#operations-tax-rules-tax_rules_list")).to_contain_text("City Tax")
    shot(page, "api-docs-swagger")

    page.goto(live_server.url + "/api/v1/docs/redoc/")
    expect(page.locator("body")).to_contain_text("/api/v1/billing-settings/", timeout=15_000)
    # The first screen only: a full-page shot of Redoc's one long page outlasts the timeout.
    page.screenshot(path=str(SCREENSHOTS / "api-docs-redoc.png"))
    # No CDN, no web fonts; Redoc's "by Redocly" logo is asked for but never leaves the page.
    assert [(r.url, r.failure) for r in elsewhere] == [
        ("https://cdn.redoc.ly/redoc/logo-mini.svg", "csp")  # blocked by the page's CSP
    ]
