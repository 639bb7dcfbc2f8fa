"""Staff in a real browser: the admin login, issuing an invoice, "Log in as customer"."""

from collections.abc import Callable
from pathlib import Path

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, Bridge
from usage.models import InvoiceStatus

Shot = Callable[[Page, str], Path]


def admin_login(page: Page, bridge: Bridge, password: str) -> None:
    page.goto(bridge.url + "/admin/")
    page.locator("input[name=username]").fill("boss")
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Log in").click()


def run_action(page: Page, pk: int, action: str) -> None:
    page.locator(f"input[name=_selected_action][value='{pk}']").check()
    page.locator("select[name=action]").select_option(action)
    page.locator("button[name=index]").click()


def test_admin_login_issue_an_invoice_and_log_in_as_customer(
    page: Page, bridge: Bridge, shot: Shot
) -> None:
    User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    ann = bridge.customer("ann@example.com", name="Ann Example")
    user_id = bridge.solusio_user_id(ann)
    draft = bridge.october_draft(ann)

    admin_login(page, bridge, "wrong")
    expect(page.locator(".errornote")).to_be_visible()
    admin_login(page, bridge, PASSWORD)
    expect(page.locator("#site-name")).to_contain_text("SolusIO billing bridge")
    shot(page, "admin-index")

    page.goto(bridge.url + "/admin/usage/invoice/")
    run_action(page, draft.pk, "issue")
    expect(page.locator(".messagelist")).to_contain_text("Issued 1 of 1")
    shot(page, "admin-invoice-issued")
    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.ISSUED
    assert draft.number == 1

    page.goto(bridge.url + "/admin/users/customer/")
    run_action(page, ann.pk, "log_in_as_customer")
    expect(page.locator("body")).to_contain_text(f"Signed in as ann@example.com (user #{user_id})")
    assert page.url.startswith(bridge.sim.control.root + "/auth/by_token?token=")
