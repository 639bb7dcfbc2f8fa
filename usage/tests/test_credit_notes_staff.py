"""Credit notes for staff and customers: admin and API actions with their permission, the
credit note list, PDF and CSV, and the portal."""

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from bridge.tests.test_staff_permissions import (
    INVOICES,
    Cast,
    cast,  # noqa: F401 - a fixture
    offered_actions,
    run_action,
    signed_in,
)
from pricing.tests.api_helpers import body, token_client
from usage import invoice_states
from usage.models import CreditNote, Invoice, InvoiceStatus
from usage.tests.test_preview_and_account import (
    _login,
    sim_settings,  # noqa: F401 - a fixture
)
from users.models import Customer

pytestmark = pytest.mark.django_db
CREDIT = "usage.add_creditnote"


def issued(drafts: list[Invoice]) -> list[Invoice]:
    invoice_states.issue_invoices(invoice_ids=[d.pk for d in drafts])
    return list(Invoice.objects.filter(pk__in=[d.pk for d in drafts]).order_by("number"))


def test_admin_void_and_correct_need_the_credit_note_permission(
    cast: Cast,  # noqa: F811 - the fixture imported above
    drafts: list[Invoice],
) -> None:
    a, b, _ = issued(drafts)
    for user in (cast.nobody, cast.viewer, cast.granted("usage.change_invoice")):
        assert {"void", "correct"}.isdisjoint(offered_actions(user, INVOICES))
        run_action(user, INVOICES, "void", a.pk)
        signed_in(user).post(
            INVOICES,
            {"action": "void", "_selected_action": [a.pk], "confirm": "yes", "reason": "x"},
        )
    assert not CreditNote.objects.exists()

    allowed = signed_in(cast.granted(CREDIT))
    assert {"void", "correct"} <= offered_actions(cast.granted(CREDIT), INVOICES)
    asked = allowed.post(INVOICES, {"action": "void", "_selected_action": [a.pk]})
    assert asked.status_code == 200
    assert 'name="reason"' in asked.content.decode()  # the reason first; nothing voided yet
    assert not CreditNote.objects.exists()
    blank = {"action": "void", "_selected_action": [a.pk], "confirm": "yes", "reason": " "}
    assert "A reason is required." in allowed.post(INVOICES, blank).content.decode()
    done = allowed.post(INVOICES, {**blank, "reason": "Duplicate"})
    assert done.status_code == 302
    note = CreditNote.objects.get()
    assert (note.invoice_id, note.reason, note.number) == (a.pk, "Duplicate", 1)
    allowed.post(
        INVOICES,
        {"action": "correct", "_selected_action": [b.pk], "confirm": "yes", "reason": "Price"},
    )
    assert CreditNote.objects.get(invoice=b).kind == "correction"
    assert Invoice.objects.filter(customer_id=b.customer_id, status="draft").count() == 1

    notes = "/admin/usage/creditnote/"
    assert signed_in(cast.nobody).get(notes).status_code == 403
    page = signed_in(cast.viewer).get(notes).content.decode()
    assert "CN-000001" in page
    assert "CN-000002" in page
    pdf = signed_in(cast.viewer).get(f"{notes}{note.pk}/pdf/")
    assert pdf["Content-Type"] == "application/pdf"
    assert signed_in(cast.nobody).get(f"{notes}{note.pk}/pdf/").status_code == 403
    exported = signed_in(cast.viewer).post(
        notes, {"action": "export_csv", "_selected_action": [note.pk]}
    )
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert len(rows) == a.lines.count()
    assert {r["credit_note"] for r in rows} == {"CN-000001"}
    assert sum(Decimal(r["amount"]) for r in rows) == -a.subtotal


def test_api_void_and_correct_need_the_credit_note_permission(
    cast: Cast,  # noqa: F811 - the fixture imported above
    drafts: list[Invoice],
) -> None:
    a, b, c = issued(drafts)
    for user in (cast.nobody, cast.viewer, cast.granted("usage.change_invoice")):
        api = token_client(user)
        assert api.post(f"/api/v1/invoices/{a.pk}/void/", {"reason": "x"}).status_code == 403
        assert api.post(f"/api/v1/invoices/{a.pk}/correct/", {"reason": "x"}).status_code == 403
    assert not CreditNote.objects.exists()

    api = token_client(cast.granted(CREDIT))
    missing = api.post(f"/api/v1/invoices/{a.pk}/void/", {}, format="json")
    assert missing.status_code == 400
    assert list(body(missing)["errors"]) == ["reason"]
    voided = api.post(f"/api/v1/invoices/{a.pk}/void/", {"reason": "Duplicate"}, format="json")
    assert voided.status_code == 200
    assert body(voided)["status"] == InvoiceStatus.VOID
    again = api.post(f"/api/v1/invoices/{a.pk}/void/", {"reason": "Duplicate"}, format="json")
    assert again.status_code == 409
    assert set(body(again)) == {"message", "errors"}
    assert CreditNote.objects.count() == 1

    corrected = api.post(f"/api/v1/invoices/{b.pk}/correct/", {"reason": "Price"}, format="json")
    assert corrected.status_code == 200
    data = body(corrected)
    assert data["credit_note"]["display_number"] == "CN-000002"
    assert data["credit_note"]["invoice"] == b.pk
    assert Decimal(data["credit_note"]["total"]) == -b.total
    assert (data["invoice"]["status"], data["invoice"]["customer"]) == ("draft", b.customer_id)
    invoice_states.mark_paid(invoice_id=c.pk)
    paid = api.post(f"/api/v1/invoices/{c.pk}/void/", {"reason": "x"}, format="json")
    assert paid.status_code == 200  # a paid invoice is credited; its payment becomes credit
    assert body(paid)["status"] == InvoiceStatus.VOID

    assert token_client(cast.nobody).get("/api/v1/credit-notes/").status_code == 403
    viewer = token_client(cast.viewer)
    listed = body(viewer.get("/api/v1/credit-notes/"))
    assert [n["display_number"] for n in listed["results"]] == [
        "CN-000003",
        "CN-000002",
        "CN-000001",
    ]
    note = CreditNote.objects.get(number=1)
    detail = body(viewer.get(f"/api/v1/credit-notes/{note.pk}/"))
    assert [Decimal(line["amount"]) for line in detail["lines"]] == [
        -line.amount for line in a.lines.order_by("position")
    ]
    pdf = viewer.get(f"/api/v1/credit-notes/{note.pk}/pdf/")
    assert pdf["Content-Type"] == "application/pdf"
    assert "credit-note-000001.pdf" in pdf["Content-Disposition"]
    exported = viewer.get("/api/v1/credit-notes/export/").content.decode()
    assert {r["credit_note"] for r in csv.DictReader(io.StringIO(exported))} == {
        "CN-000001",
        "CN-000002",
        "CN-000003",
    }
    assert viewer.delete(f"/api/v1/credit-notes/{note.pk}/").status_code == 403  # never by hand


def test_customers_see_their_credit_notes_with_the_pdf(
    sim_settings: Any,  # noqa: F811 - the fixture imported above
    drafts: list[Invoice],
    customers: list[Customer],
) -> None:
    a = issued(drafts)[0]
    invoice_states.void_invoice(invoice_id=a.pk, reason="Billed twice")
    note = CreditNote.objects.get()
    owner = next(c for c in customers if c.pk == a.customer_id)
    other = next(c for c in customers if c.pk != a.customer_id)
    ann, bob = _login(owner), _login(other)
    page = ann.get("/account/invoices/").content.decode()
    assert "CN-000001" in page
    assert "Billed twice" in page
    pdf = ann.get(f"/account/invoices/credit-notes/{note.pk}/pdf/")
    assert pdf["Content-Type"] == "application/pdf"
    assert "CN-000001" not in bob.get("/account/invoices/").content.decode()
    assert bob.get(f"/account/invoices/credit-notes/{note.pk}/pdf/").status_code == 404
    assert Client().get(f"/account/invoices/credit-notes/{note.pk}/pdf/").status_code == 302
