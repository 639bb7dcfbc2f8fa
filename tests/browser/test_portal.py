"""The customer portal in a real browser: every form posts with the browser's own Origin
and Referer (the Django test client sends neither), so CSRF is checked as in production."""

import io
import re
from collections.abc import Callable
from pathlib import Path

from django.core import mail
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, Bridge
from usage import invoice_states

Shot = Callable[[Page, str], Path]


def sign_in(page: Page, bridge: Bridge, email: str, password: str) -> None:
    page.goto(bridge.url + "/account/login/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_and_a_wrong_password(page: Page, bridge: Bridge, shot: Shot) -> None:
    bridge.customer("ann@example.com", name="Ann Example")
    sign_in(page, bridge, "ann@example.com", "not-her-password")
    expect(page.locator(".errorlist")).to_contain_text("correct e-mail")
    assert page.url.endswith("/account/login/")
    shot(page, "portal-wrong-password")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-status")).to_contain_text("Ann Example")
    assert page.url == bridge.url + "/account/"
    shot(page, "portal-home")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_forgot_password_e_mail_link_reset_then_sign_in(
    page: Page, bridge: Bridge, shot: Shot
) -> None:
    bridge.customer("ann@example.com")
    page.goto(bridge.url + "/account/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("E-mail").fill("ann@example.com")
    page.get_by_role("button").click()
    expect(page.locator("body")).to_contain_text("e-mail")
    assert page.url.endswith("/account/forgot/sent/")

    (message,) = mail.outbox
    link = re.search(r"(http\S+#\S+)", str(message.body))
    assert link is not None, message.body
    page.goto(link.group(1))
    expect(page.locator("#key-row")).to_be_hidden()  # the key came from the link
    assert "#" not in page.url  # and left the address bar
    shot(page, "portal-reset")
    new = PASSWORD + "-new"
    page.locator("input[name=new_password1]").fill(new)
    page.locator("input[name=new_password2]").fill(new)
    page.get_by_role("button", name="Set the password").click()
    expect(page.locator(".done")).to_contain_text("Your new password is set")

    sign_in(page, bridge, "ann@example.com", new)
    expect(page.locator("#account-status")).to_contain_text("ann@example.com")


def test_invoices_pdf_and_open_control_panel(page: Page, bridge: Bridge, shot: Shot) -> None:
    ann = bridge.customer("ann@example.com", name="Ann Example")
    user_id = bridge.solusio_user_id(ann)
    invoice = bridge.october_draft(ann)
    invoice_states.issue_invoice(invoice_id=invoice.pk)

    sign_in(page, bridge, "ann@example.com", PASSWORD)
    page.get_by_role("link", name="Your invoices").click()
    row = page.locator("tr", has_text="INV-")
    expect(row).to_have_count(1)
    shot(page, "portal-invoices")
    with page.expect_download() as download_info:
        row.get_by_role("link", name="PDF").click()
    pdf = Path(download_info.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    assert download_info.value.suggested_filename.startswith("invoice-")

    page.goto(bridge.url + "/account/")
    page.get_by_role("button", name="Open control panel").click()
    expect(page.locator("body")).to_contain_text(f"Signed in as ann@example.com (user #{user_id})")
    assert page.url.startswith(bridge.sim.control.root + "/auth/by_token?token=")
    shot(page, "solusio-login-page")


# Right edges of every element past the viewport: empty when nothing is clipped or
# pushes the page sideways.
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
    .map(e => e.tagName + '.' + e.className + ': ' + e.textContent.trim().slice(0, 40))"""


def assert_fits(page: Page) -> None:
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate(OVERFLOWING) == []
    amounts = page.locator(".amount")
    assert amounts.count() >= 3  # the month so far: its line and its total; the invoice
    for i in range(amounts.count()):
        amount = amounts.nth(i)
        expect(amount).to_be_visible()
        expect(amount).to_contain_text("$")
        box = amount.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= width


def test_invoices_fit_a_phone_and_a_desktop(page: Page, bridge: Bridge, shot: Shot) -> None:
    ann = bridge.customer("ann@example.com", name="Ann Example")
    invoice = bridge.october_draft(ann)  # its server still runs: this month has usage too
    invoice_states.issue_invoice(invoice_id=invoice.pk)
    sign_in(page, bridge, "ann@example.com", PASSWORD)
    expect(page.locator("#account-status")).to_contain_text("Ann Example")

    page.set_viewport_size({"width": 360, "height": 800})
    page.goto(bridge.url + "/account/invoices/")
    expect(page.locator("#upcoming tbody tr")).to_have_count(1)
    stylesheet = page.evaluate("getComputedStyle(document.querySelector('#upcoming td')).display")
    assert stylesheet == "flex"  # stacked as a card: the stylesheet is served and applies
    expect(page.locator("#upcoming td[data-label=Tokens]")).to_be_visible()
    assert_fits(page)
    shot(page, "portal-invoices-360")

    page.set_viewport_size({"width": 1100, "height": 800})
    page.reload()
    assert page.evaluate("getComputedStyle(document.querySelector('#upcoming td')).display") == (
        "table-cell"
    )
    assert_fits(page)
    shot(page, "portal-invoices-1100")


def test_a_credit_note_and_its_e_invoice(page: Page, bridge: Bridge, shot: Shot) -> None:
    """A voided invoice's credit note is listed with its PDF and its e-invoice (Factur-X,
    type 381, naming the invoice it credits), on a desktop and on a phone."""
    from pypdf import PdfReader

    from usage.models import BillingSettings

    BillingSettings.objects.update_or_create(
        pk=1, defaults={"seller_name": "Example Hosting Ltd", "seller_vat_id": "GB123456789"}
    )
    ann = bridge.customer("ann@example.com", name="Ann Example", country="GB")
    invoice = bridge.october_draft(ann)
    invoice_states.issue_invoice(invoice_id=invoice.pk)
    invoice_states.void_invoice(invoice_id=invoice.pk, reason="Billed twice")

    sign_in(page, bridge, "ann@example.com", PASSWORD)
    page.get_by_role("link", name="Your invoices").click()
    row = page.locator("#credit-notes tr", has_text="CN-000001")
    expect(row).to_contain_text("INV-000001")
    expect(row).to_contain_text("Billed twice")
    shot(page, "portal-credit-note")
    with page.expect_download() as download_info:
        row.get_by_role("link", name="e-invoice").click()
    assert download_info.value.suggested_filename == "credit-note-000001-facturx.pdf"
    body = Path(download_info.value.path()).read_bytes()
    xml = PdfReader(io.BytesIO(body)).attachments["factur-x.xml"][0]
    assert b"<ram:TypeCode>381</ram:TypeCode>" in xml
    assert b"<ram:IssuerAssignedID>INV-000001</ram:IssuerAssignedID>" in xml

    page.set_viewport_size({"width": 360, "height": 800})
    page.reload()
    expect(row.get_by_role("link", name="e-invoice")).to_be_visible()
    expect(row.locator("td[data-label='Credits invoice']")).to_be_visible()  # a labelled card
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.evaluate(OVERFLOWING) == []
    shot(page, "portal-credit-note-360")


def test_an_invoice_page_with_its_lines_payments_and_amount_due(
    page: Page, bridge: Bridge, shot: Shot
) -> None:
    """From the list, the customer opens an invoice: its lines and total, a part payment and
    the amount still due, as the PDF states them; on a desktop and on a phone."""
    from datetime import timedelta
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from django.conf import settings

    from payments import services as payments

    ann = bridge.customer("ann@example.com", name="Ann Example")
    invoice = invoice_states.issue_invoice(invoice_id=bridge.october_draft(ann).pk)
    assert invoice.issued_at is not None
    received = invoice.issued_at + timedelta(minutes=1)
    day = received.astimezone(ZoneInfo(settings.BILLING_TIMEZONE)).date().isoformat()
    payments.record_payment(
        customer_id=ann.pk,
        amount=Decimal("2.00"),
        currency="USD",
        method="bank_transfer",
        received_at=received,  # after the invoice: a payment, not credit
        reference="T-1",
    )
    sign_in(page, bridge, "ann@example.com", PASSWORD)
    page.get_by_role("link", name="Your invoices").click()
    page.get_by_role("link", name="INV-000001").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoice INV-000001")
    lines = page.locator("#invoice tbody tr")
    expect(lines).to_have_count(invoice.lines.count())
    expect(lines.first).to_contain_text("1 Core, 1 GB RAM")
    totals = page.locator("#invoice tfoot")
    expect(totals).to_contain_text(re.compile(r"Total\s*\$5\.00\xa0USD"))
    expect(totals).to_contain_text(re.compile(rf"Paid {day} \(bank transfer\)\s*-\$2\.00"))
    expect(totals).to_contain_text(re.compile(r"Amount due\s*\$3\.00\xa0USD"))
    expect(page.locator("#invoice dl.facts")).to_contain_text("October 2026")
    shot(page, "portal-invoice-page")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="PDF").click()
    assert download_info.value.suggested_filename == "invoice-000001.pdf"

    page.set_viewport_size({"width": 360, "height": 800})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.evaluate(OVERFLOWING) == []
    expect(totals).to_contain_text("Amount due")
    shot(page, "portal-invoice-page-360")
