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

    # The issued invoice's page: its lines fit the window (a wide table scrolls in its own
    # box), and it offers no save: it changes only through the actions.
    page.goto(bridge.url + f"/admin/usage/invoice/{draft.pk}/change/")
    lines = page.locator("#lines-group tbody tr.has_original")
    expect(lines).to_have_count(draft.lines.count())
    expect(lines.first).to_contain_text("2026-10-01 00:00")
    expect(page.locator("#lines-group td.original p").first).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(page.locator("input[name=_save]")).to_have_count(0)
    expect(page.get_by_role("link", name="Close", exact=True)).to_be_visible()
    shot(page, "admin-invoice-page")

    page.goto(bridge.url + "/admin/users/customer/")
    run_action(page, ann.pk, "log_in_as_customer")
    expect(page.locator("body")).to_contain_text(f"Signed in as ann@example.com (user #{user_id})")
    assert page.url.startswith(bridge.sim.control.root + "/auth/by_token?token=")


def test_close_runs_show_their_progress_to_a_viewer(page: Page, bridge: Bridge, shot: Shot) -> None:
    from datetime import UTC, date, datetime

    from django.contrib.auth.models import Permission

    from usage.models import CloseRun, CloseRunState, CloseShard, CloseShardStage, CloseShardState

    viewer = User.objects.create_user("boss", password=PASSWORD, is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_closerun"))
    done = bridge.customer("ann@example.com", name="Ann Example")
    bridge.october_draft(done)  # an inline close, finished
    run = CloseRun.objects.create(
        period=date(2026, 11, 1), state=CloseRunState.BUILDING, source="usage_api",
        started_at=datetime(2026, 12, 1, 0, 7, tzinfo=UTC), rows=412_000, customers=80_000,
        shards_total=40, seconds={"pull": 31.0},
    )  # fmt: skip
    for index in range(2):  # the pull's shards, done
        CloseShard.objects.create(
            run=run, stage=CloseShardStage.PULL, index=index, first_part=index * 100 + 1,
            last_part=None if index else 100, state=CloseShardState.DONE, attempts=1,
            worker="worker-1:40", rows=206_000 if index else 10_000,
        )  # fmt: skip
    for index in range(3):
        CloseShard.objects.create(
            run=run, index=index, first_customer=index * 2000 + 1,
            last_customer=(index + 1) * 2000, customers=2000,
            state=CloseShardState.RUNNING if index == 2 else CloseShardState.DONE,
            attempts=2 if index == 2 else 1, worker=f"worker-{index % 2 + 1}:{40 + index}",
            built=700 if index == 2 else 2000,
            error="OperationalError: server closed the connection" if index == 2 else "",
        )  # fmt: skip

    admin_login(page, bridge, PASSWORD)
    page.get_by_role("link", name="Close runs").click()
    bars = page.locator("progress")
    expect(bars).to_have_count(2)
    expect(page.locator("#result_list")).to_contain_text("2 / 40")
    shot(page, "admin-close-runs")
    page.get_by_role("link", name=f"#{run.pk}").click()
    expect(page.locator("body")).to_contain_text("pages 1–100")
    expect(page.locator("body")).to_contain_text("pages 101–end")
    expect(page.locator("body")).to_contain_text("customers 4001–6000")
    expect(page.locator("body")).to_contain_text("worker-1:42")
    expect(page.locator("body")).to_contain_text("server closed the connection")
    shot(page, "admin-close-run")


def test_void_an_invoice_and_download_its_credit_note_as_ubl(
    page: Page, bridge: Bridge, shot: Shot
) -> None:
    """Staff void an issued invoice with a reason, open the credit note and download it as
    a UBL CreditNote that names the invoice it credits."""
    from lxml import etree

    from usage import invoice_states
    from usage.einvoice import schemas, ubl
    from usage.models import BillingSettings

    User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    BillingSettings.objects.update_or_create(
        pk=1, defaults={"seller_name": "Example Hosting Ltd", "seller_vat_id": "GB123456789"}
    )
    ann = bridge.customer("ann@example.com", name="Ann Example", country="GB")
    invoice_states.issue_invoices(invoice_ids=[bridge.october_draft(ann).pk])

    admin_login(page, bridge, PASSWORD)
    page.goto(bridge.url + "/admin/usage/invoice/")
    invoice = ann.invoices.get()
    run_action(page, invoice.pk, "void")
    page.get_by_label("Reason (printed on the credit note)").fill("Billed twice")
    page.locator("input[type=submit]").click()
    expect(page.locator(".messagelist")).to_contain_text("Voided: 1 invoice(s)")

    page.goto(bridge.url + "/admin/usage/creditnote/")
    page.get_by_role("link", name="CN-000001").click()
    expect(page.locator(".field-document")).to_contain_text("UBL XML")
    expect(page.locator(".field-total_display")).to_contain_text("-$5.00 USD")
    # The customer had the invoice by e-mail, so they have its credit note too.
    expect(page.locator(".field-email_delivery")).to_contain_text("to ann@example.com")
    shot(page, "admin-credit-note")
    with page.expect_download() as download:
        page.get_by_role("link", name="UBL XML").click()
    assert download.value.suggested_filename == "credit-note-000001-ubl.xml"
    xml = Path(download.value.path()).read_bytes()
    schemas.check(xml, schemas.ubl_credit_note_schema())
    ns = {"cac": ubl.CAC, "cbc": ubl.CBC}
    root = etree.fromstring(xml)
    assert root.findtext(f"{{{ubl.CBC}}}CreditNoteTypeCode") == "381"
    assert root.xpath("string(//cac:InvoiceDocumentReference/cbc:ID)", namespaces=ns) == (
        "INV-000001"
    )
