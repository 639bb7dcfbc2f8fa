"""Credit note e-mails: a customer who received an invoice receives the credit note that
reverses it, once, with its PDF, in their language; retried, swept, visible, re-sendable by
staff who may e-mail invoices."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from bridge.models import DeliveryState
from bridge.tests.test_staff_permissions import (
    Cast,
    cast,  # noqa: F401 - a fixture
    offered_actions,
    signed_in,
)
from pricing.tests.api_helpers import body, make_user, token_client
from usage import emails, invoice_states, tasks
from usage.models import BillingSettings, CreditNote, CreditNoteEmail, Invoice, InvoiceEmail
from usage.tests.test_invoice_email import (
    RefusingBackend,
    committed,  # noqa: F401 - a fixture
    eager,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/usage/creditnote/"


def note_of(invoice: Invoice) -> CreditNote:
    return CreditNote.objects.get(invoice=invoice)


def sent_invoice(draft: Invoice, run: Callable[..., Any]) -> Invoice:
    invoice = run(invoice_states.issue_invoice, invoice_id=draft.pk)
    assert InvoiceEmail.objects.get(invoice=invoice).state == DeliveryState.SENT
    return invoice


@pytest.mark.both_databases
def test_voiding_an_emailed_invoice_emails_its_credit_note_once(
    drafts: list[Invoice],
    eager: None,  # noqa: F811
    committed: Callable[..., Any],  # noqa: F811
) -> None:
    invoice = sent_invoice(drafts[1], committed)
    committed(invoice_states.void_invoice, invoice_id=invoice.pk, reason="Billed twice")
    note = note_of(invoice)
    assert len(mail.outbox) == 2
    message = mail.outbox[1]
    assert message.to == ["customer2@example.test"]
    assert message.subject == "Credit note CN-000001 for invoice INV-000001"
    assert "your credit note CN-000001 for invoice INV-000001 is attached." in message.body
    assert "Reason: Billed twice" in message.body
    assert "Total: -$" in message.body
    (name, content, mimetype), *_ = message.attachments
    assert (name, mimetype) == ("credit-note-000001.pdf", "application/pdf")
    assert content.startswith(b"%PDF")
    record = CreditNoteEmail.objects.get(credit_note=note)
    assert (record.state, record.attempts, record.recipient) == (
        "sent",
        1,
        "customer2@example.test",
    )
    # A duplicate message, the sweep a day later: nothing more is sent.
    tasks.send_credit_note_emails([note.pk])
    assert emails.sweep(now=timezone.now() + timedelta(days=1)) == 0
    assert len(mail.outbox) == 2


def test_a_correction_emails_the_credit_note_in_the_customers_language(
    drafts: list[Invoice],
    eager: None,  # noqa: F811
    committed: Callable[..., Any],  # noqa: F811
) -> None:
    invoice = sent_invoice(drafts[0], committed)
    invoice.customer.language = "de"
    invoice.customer.save(update_fields=["language"])
    committed(invoice_states.correct_invoice, invoice_id=invoice.pk, reason="Falscher Tarif")
    message = mail.outbox[-1]
    assert message.subject == "Stornorechnung CN-000001 zur Rechnung INV-000001"
    assert "Grund: Falscher Tarif" in message.body


def test_no_credit_note_email_for_an_invoice_the_customer_never_received(
    drafts: list[Invoice],
    eager: None,  # noqa: F811
    committed: Callable[..., Any],  # noqa: F811
) -> None:
    a, b, _ = drafts
    invoice_states.issue_invoice(invoice_id=a.pk)  # its e-mail's message is lost: pending
    committed(invoice_states.void_invoice, invoice_id=a.pk, reason="Wrong customer")
    row = BillingSettings.load()
    row.email_invoices = False
    row.save()
    committed(invoice_states.issue_invoice, invoice_id=b.pk)
    committed(invoice_states.void_invoice, invoice_id=b.pk, reason="Wrong customer")
    assert not CreditNoteEmail.objects.exists()
    assert mail.outbox == []
    # Staff may still send one by hand.
    queued = committed(emails.resend_credit_notes, credit_note_ids=[note_of(b).pk])
    assert queued == 1
    assert [m.subject for m in mail.outbox] == ["Credit note CN-000002 for invoice INV-000002"]


def test_a_failing_server_retries_parks_and_the_sweep_sends_what_the_broker_lost(
    drafts: list[Invoice],
    committed: Callable[..., Any],  # noqa: F811
    settings: Any,
    eager: None,  # noqa: F811
) -> None:
    invoice = sent_invoice(drafts[0], committed)
    settings.EMAIL_BACKEND = f"{RefusingBackend.__module__}.RefusingBackend"
    settings.INVOICE_EMAIL_MAX_ATTEMPTS = 2
    committed(invoice_states.void_invoice, invoice_id=invoice.pk, reason="Duplicate")
    note = note_of(invoice)
    first = CreditNoteEmail.objects.get(credit_note=note)
    assert (first.state, first.attempts) == ("pending", 1)
    assert first.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert first.next_attempt_at is not None
    assert emails.deliver_credit_note(credit_note_id=note.pk).step is emails.Step.IDLE
    parked = emails.deliver_credit_note(credit_note_id=note.pk, now=first.next_attempt_at)
    assert parked.step is emails.Step.PARKED
    assert CreditNoteEmail.objects.get(pk=first.pk).state == "failed"

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    CreditNoteEmail.objects.filter(pk=first.pk).update(
        state=DeliveryState.PENDING, next_attempt_at=None, created_at=timezone.now()
    )  # as if its message had been lost
    assert emails.sweep(now=timezone.now()) == 0  # too young: its message may be on its way
    assert emails.sweep(now=timezone.now() + timedelta(minutes=5)) == 1
    assert [m.subject for m in mail.outbox][-1] == "Credit note CN-000001 for invoice INV-000001"


def test_staff_who_may_email_invoices_may_email_credit_notes(
    cast: Cast,  # noqa: F811 - the fixture imported above
    drafts: list[Invoice],
    eager: None,  # noqa: F811
    committed: Callable[..., Any],  # noqa: F811
) -> None:
    invoice = committed(invoice_states.issue_invoice, invoice_id=drafts[0].pk)
    committed(invoice_states.void_invoice, invoice_id=invoice.pk, reason="Duplicate")
    note = note_of(invoice)
    mail.outbox.clear()
    post = {"action": "send_email", "_selected_action": [note.pk]}
    assert signed_in(cast.nobody).post(CHANGELIST, post).status_code == 403
    for user in (cast.viewer, cast.granted("usage.add_creditnote")):
        assert "send_email" not in offered_actions(user, CHANGELIST)
        committed(signed_in(user).post, CHANGELIST, post)
    assert mail.outbox == []

    mailer = cast.granted("usage.change_invoice")
    assert "send_email" in offered_actions(mailer, CHANGELIST)
    committed(signed_in(mailer).post, CHANGELIST, post)
    assert [m.subject for m in mail.outbox] == ["Credit note CN-000001 for invoice INV-000001"]
    page = signed_in(cast.viewer).get(f"/admin/usage/creditnote/{note.pk}/change/")
    assert "customer1@example.test" in page.content.decode()  # the e-mail panel: sent to


def test_the_api_shows_the_email_and_sends_it_again_with_the_invoices_permission(
    cast: Cast,  # noqa: F811 - the fixture imported above
    drafts: list[Invoice],
    eager: None,  # noqa: F811
    committed: Callable[..., Any],  # noqa: F811
) -> None:
    invoice = sent_invoice(drafts[0], committed)
    committed(invoice_states.void_invoice, invoice_id=invoice.pk, reason="Duplicate")
    note = note_of(invoice)
    url = f"/api/v1/credit-notes/{note.pk}/"
    shown = body(token_client(cast.viewer).get(url))
    assert (shown["email"]["state"], shown["email"]["recipient"]) == (
        "sent",
        "customer1@example.test",
    )
    mail.outbox.clear()
    change_only = make_user("change-only", models=[Invoice], actions=("change",))
    for user in (cast.nobody, cast.viewer, cast.granted("usage.add_creditnote"), change_only):
        assert token_client(user).post(f"{url}resend-email/").status_code == 403
    assert mail.outbox == []

    api = token_client(cast.granted("usage.change_invoice"))
    sent = committed(api.post, f"{url}resend-email/")
    assert sent.status_code == 200, sent.content
    assert body(sent)["email"]["state"] in ("pending", "sent")
    assert [m.subject for m in mail.outbox] == ["Credit note CN-000001 for invoice INV-000001"]
