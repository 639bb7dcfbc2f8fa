"""Bank statements for staff: the API's upload, lists and entry actions, and the admin's
upload form and entry actions, each tried with no permission, view-only and the right one."""

from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from payments.bank import services
from payments.models import BankEntry, BankStatement, EntryState
from usage.models import Invoice, InvoiceStatus
from users.models import Customer

pytestmark = pytest.mark.django_db
DATA = Path(__file__).parent / "data"
STATEMENTS = reverse("admin:payments_bankstatement_changelist")
UPLOAD = reverse("admin:payments_bankstatement_add")
ENTRIES = reverse("admin:payments_bankentry_changelist")


def staff(name: str, *codenames: str) -> User:
    user = User.objects.create_user(name, password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="payments", codename__in=codenames)
    )
    return user


@pytest.fixture
def nobody() -> User:
    return staff("nobody")


@pytest.fixture
def viewer() -> User:
    return staff("viewer", "view_bankstatement", "view_bankentry")


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def browser(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def open_invoice(customer: Customer, issue: Callable[..., Invoice]) -> Invoice:
    return issue(customer, 10, "30.00")


def csv_for(invoice: Invoice, amount: str = "30.00") -> bytes:
    row = f"2026-11-29,{amount},USD,INV-{invoice.number:06d}"
    return f"date,amount,currency,reference\n{row}\n".encode()


def upload(client: APIClient, content: bytes, name: str = "bank.csv") -> object:
    return client.post(
        "/api/v1/bank-statements/",
        {"file": SimpleUploadedFile(name, content)},
        format="multipart",
    )


# --- API -------------------------------------------------------------------------------


def test_api_upload_needs_the_add_permission(
    nobody: User, viewer: User, open_invoice: Invoice
) -> None:
    assert upload(api(nobody), csv_for(open_invoice)).status_code == 403  # type: ignore[attr-defined]
    assert upload(api(viewer), csv_for(open_invoice)).status_code == 403  # type: ignore[attr-defined]
    assert not BankStatement.objects.exists()
    uploader = staff("uploader", "add_bankstatement")
    response = upload(api(uploader), csv_for(open_invoice))
    assert response.status_code == 201, response.json()  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert (body["matched"], body["unmatched"], body["invoices_paid"], body["new"]) == (1, 0, 1, 1)
    assert Invoice.objects.get(pk=open_invoice.pk).status == InvoiceStatus.PAID
    again = upload(api(uploader), csv_for(open_invoice))
    assert again.status_code == 200  # type: ignore[attr-defined]
    assert again.json()["already_imported"] is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<Document>", "file: not well-formed XML"),
        (b"\x00\x01binary", "file: the CSV header lacks"),
    ],
)
def test_api_a_malformed_file_is_a_400_with_the_api_s_error_shape(
    content: bytes, message: str
) -> None:
    response = upload(api(staff("uploader", "add_bankstatement")), content)
    assert response.status_code == 400  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["message"].startswith(message)
    assert list(body["errors"]) == ["file"]
    missing = api(staff("u2", "add_bankstatement")).post(
        "/api/v1/bank-statements/", {}, format="multipart"
    )
    assert missing.status_code == 400
    assert "file" in missing.json()["errors"]


def test_api_lists_need_the_view_permission(
    nobody: User, viewer: User, open_invoice: Invoice
) -> None:
    services.import_statement(csv_for(open_invoice, "31.00"))
    for path in ("/api/v1/bank-statements/", "/api/v1/bank-entries/"):
        assert api(nobody).get(path).status_code == 403
    assert api(viewer).get("/api/v1/bank-statements/").json()["count"] == 1
    # It names the invoice (though it pays 1.00 more: credit), so it is matched.
    matched = api(viewer).get("/api/v1/bank-entries/", {"state": "matched"}).json()
    assert [e["amount"] for e in matched["results"]] == ["31.0000"]
    assert api(viewer).get("/api/v1/bank-entries/", {"state": "unmatched"}).json()["count"] == 0
    assert api(viewer).get("/api/v1/bank-entries/", {"state": "nonsense"}).status_code == 400


def test_api_assign_and_ignore_need_the_change_permission(
    nobody: User, viewer: User, customer: Customer, issue: Callable[..., Invoice]
) -> None:
    first = issue(customer, 10, "30.00")
    issue(customer, 11, "30.00")  # two open invoices of 30.00: the transfer is ambiguous
    services.import_statement(b"date,amount,currency,reference\n2026-11-29,30.00,USD,hosting\n")
    entry = BankEntry.objects.get()
    assert entry.state == EntryState.UNMATCHED
    assign = f"/api/v1/bank-entries/{entry.pk}/assign/"
    for user in (nobody, viewer):
        assert api(user).post(assign, {"invoice": first.pk}, format="json").status_code == 403
        assert api(user).post(f"/api/v1/bank-entries/{entry.pk}/ignore/").status_code == 403
    clerk = api(staff("clerk", "view_bankentry", "change_bankentry"))
    assert clerk.post(assign, {"invoice": 0}, format="json").status_code == 400
    response = clerk.post(assign, {"invoice": first.pk}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "matched"
    assert Invoice.objects.get(pk=first.pk).status == InvoiceStatus.PAID
    refused = clerk.post(f"/api/v1/bank-entries/{entry.pk}/ignore/")
    assert refused.status_code == 400
    assert "matched, not unmatched" in refused.json()["message"]


# --- admin -----------------------------------------------------------------------------


def test_admin_upload_form_needs_the_add_permission(
    nobody: User, viewer: User, open_invoice: Invoice
) -> None:
    assert browser(nobody).get(STATEMENTS).status_code == 403
    page = browser(viewer).get(STATEMENTS)
    assert page.status_code == 200
    assert b"statement-upload" not in page.content
    posted = browser(viewer).post(
        UPLOAD, {"file": SimpleUploadedFile("b.csv", csv_for(open_invoice))}
    )
    assert posted.status_code == 403
    assert not BankStatement.objects.exists()
    uploader = browser(
        staff("uploader", "view_bankstatement", "add_bankstatement", "view_bankentry")
    )
    assert b"statement-upload" in uploader.get(STATEMENTS).content
    done = uploader.post(
        UPLOAD, {"file": SimpleUploadedFile("b.csv", csv_for(open_invoice))}, follow=True
    )
    assert done.status_code == 200
    assert b"matched 1, unmatched 0" in done.content
    assert Invoice.objects.get(pk=open_invoice.pk).status == InvoiceStatus.PAID
    bad = uploader.post(UPLOAD, {"file": SimpleUploadedFile("b.xml", b"<Document>")})
    assert bad.status_code == 200
    assert b"not well-formed XML" in bad.content


def test_admin_entry_actions_need_the_change_permission(
    nobody: User, viewer: User, customer: Customer, issue: Callable[..., Invoice]
) -> None:
    first = issue(customer, 10, "30.00")
    second = issue(customer, 11, "30.00")
    services.import_statement(b"date,amount,currency,reference\n2026-11-29,30.00,USD,hosting\n")
    entry = BankEntry.objects.get()
    assert browser(nobody).get(ENTRIES).status_code == 403
    listed = browser(viewer).get(ENTRIES, {"state__exact": "unmatched"})
    assert listed.status_code == 200
    assert first.display_number.encode() in listed.content  # suggested
    assert listed.context["action_form"] is None  # no actions offered to a viewer
    act = {"action": "assign_to_invoice", ACTION_CHECKBOX_NAME: [entry.pk]}
    browser(viewer).post(ENTRIES, {**act, "confirm": "yes", "suggestion": second.pk})
    assert BankEntry.objects.get().state == EntryState.UNMATCHED
    clerk = browser(staff("clerk", "view_bankentry", "change_bankentry"))
    offered = {
        name for name, _ in clerk.get(ENTRIES).context["action_form"].fields["action"].choices
    }
    assert {"assign_to_invoice", "match_again", "mark_ignored"} <= offered
    page = clerk.post(ENTRIES, act)
    assert b"Likely invoices" in page.content
    assert second.display_number.encode() in page.content
    clerk.post(ENTRIES, {**act, "confirm": "yes", "suggestion": second.pk})
    entry.refresh_from_db()
    assert entry.state == EntryState.MATCHED
    assert Invoice.objects.get(pk=second.pk).status == InvoiceStatus.PAID
    assert Invoice.objects.get(pk=first.pk).status == InvoiceStatus.ISSUED


def test_admin_ignore_and_typed_invoice_number(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    invoice = issue(customer, 10, "30.00")
    services.import_statement(
        b"date,amount,currency,reference\n2026-11-29,7.00,USD,interest\n2026-11-29,9.00,USD,x\n"
    )
    interest, other = BankEntry.objects.order_by("amount")
    clerk = browser(staff("clerk", "view_bankentry", "change_bankentry"))
    clerk.post(ENTRIES, {"action": "mark_ignored", ACTION_CHECKBOX_NAME: [interest.pk]})
    assert BankEntry.objects.get(pk=interest.pk).state == EntryState.IGNORED
    act = {"action": "assign_to_invoice", ACTION_CHECKBOX_NAME: [other.pk], "confirm": "yes"}
    wrong = clerk.post(ENTRIES, {**act, "invoice": "INV-999999"})
    assert b"Choose one of the invoices" in wrong.content
    clerk.post(ENTRIES, {**act, "invoice": invoice.display_number})
    assert BankEntry.objects.get(pk=other.pk).state == EntryState.MATCHED
