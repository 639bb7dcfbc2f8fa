"""Invoice e-mails: one per issued invoice with its PDF, retried, swept, visible, re-sendable."""

import io
import logging
import smtplib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client
from django.utils import timezone

from bridge.celery import app as celery_app
from bridge.console import EmailBackend
from bridge.models import DeliveryState
from pricing.tests.api_helpers import body, staff_client
from solusio.client import SolusIOClient
from usage import close, emails, invoice_states, tasks
from usage.models import BillingSettings, Invoice, InvoiceEmail
from usage.rules import period_of_month
from users.models import Customer

pytestmark = pytest.mark.django_db
OCTOBER = period_of_month(2026, 10, "UTC")


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that drops every connection."""

    def send_messages(self, email_messages: Any) -> int:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # Debian's, as bin/test installs


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks run where they are sent (their countdown ignored), as a worker would run them."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Run `fn` and then its transaction's on-commit callbacks (the tests' transaction never
    commits, so Django would otherwise drop them)."""

    def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def record(invoice: Invoice) -> InvoiceEmail:
    return InvoiceEmail.objects.get(invoice=invoice)


@pytest.mark.both_databases
def test_issuing_emails_the_invoice_once_with_its_pdf(
    drafts: list[Invoice], eager: None, committed: Callable[..., Any]
) -> None:
    invoice = committed(invoice_states.issue_invoice, invoice_id=drafts[1].pk)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["customer2@example.test"]
    assert message.subject == "Invoice INV-000001 for October 2026"
    assert "Total: $" in message.body
    (name, content, mimetype), *_ = message.attachments
    assert (name, mimetype) == ("invoice-000001.pdf", "application/pdf")
    assert content.startswith(b"%PDF")
    sent = record(invoice)
    assert (sent.state, sent.attempts, sent.recipient) == ("sent", 1, "customer2@example.test")
    assert sent.sent_at is not None
    # The task again (a duplicate message, a redelivery after a crash), the sweep, a
    # second issue: nothing more is sent.
    tasks.send_invoice_emails([invoice.pk])
    assert emails.sweep(now=timezone.now() + timedelta(days=1)) == 0
    with pytest.raises(invoice_states.InvoiceStateError):
        committed(invoice_states.issue_invoice, invoice_id=invoice.pk)
    assert len(mail.outbox) == 1
    assert InvoiceEmail.objects.count() == 1


@pytest.mark.both_databases
def test_a_close_that_issues_emails_each_invoice_once(
    client: SolusIOClient,
    customers: list[Customer],
    add_server: Callable[..., Any],
    eager: None,
    committed: Callable[..., Any],
) -> None:
    for user in (1, 2, 4):  # user 4 has no customer: orphan usage, no invoice, no e-mail
        add_server(user, 1, OCTOBER.start - timedelta(hours=5))
    after = datetime(2029, 1, 1, tzinfo=UTC)
    close_cycle = close.close_cycle
    committed(close_cycle, period=OCTOBER, client=client, now=after, auto_issue=True)
    committed(close_cycle, period=OCTOBER, client=client, now=after, auto_issue=True)  # a re-run
    assert sorted(m.to[0] for m in mail.outbox) == [
        "customer1@example.test",
        "customer2@example.test",
    ]
    assert set(InvoiceEmail.objects.values_list("state", flat=True)) == {"sent"}


@pytest.mark.both_databases
def test_a_failing_smtp_server_is_retried_then_shown_as_failed(
    drafts: list[Invoice],
    eager: None,
    committed: Callable[..., Any],
    settings: Any,
    admin_client: Client,
) -> None:
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    settings.INVOICE_EMAIL_MAX_ATTEMPTS = 3
    invoice = committed(invoice_states.issue_invoice, invoice_id=drafts[0].pk)
    first = record(invoice)
    assert (first.state, first.attempts) == ("pending", 1)
    assert first.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert first.next_attempt_at is not None
    # Not due yet: a task arriving early (the retry's own, or the sweep's) sends nothing.
    assert emails.deliver(invoice_id=invoice.pk).step is emails.Step.IDLE
    assert emails.sweep(now=first.next_attempt_at - timedelta(seconds=1)) == 0
    second = emails.deliver(invoice_id=invoice.pk, now=first.next_attempt_at)
    assert second.step is emails.Step.WAIT
    assert second.retry_in is not None
    waited = record(invoice).next_attempt_at
    assert waited is not None
    assert waited - first.next_attempt_at > first.next_attempt_at - first.created_at  # grows
    assert emails.deliver(invoice_id=invoice.pk, now=waited).step is emails.Step.PARKED
    failed = record(invoice)
    assert (failed.state, failed.attempts, failed.next_attempt_at) == ("failed", 3, None)
    assert mail.outbox == []
    assert emails.sweep(now=waited + timedelta(days=1)) == 0  # failed is for staff now
    page = admin_client.get(f"/admin/usage/invoice/{invoice.pk}/change/").content.decode()
    assert "Failed" in page
    assert "SMTPServerDisconnected: Connection unexpectedly closed" in page
    listed = admin_client.get("/admin/usage/invoice/").content.decode()
    assert "Failed" in listed
    # The server is back; staff re-send from the admin.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    committed(
        admin_client.post,
        "/admin/usage/invoice/",
        {"action": "resend_email", "_selected_action": [invoice.pk]},
    )
    assert len(mail.outbox) == 1
    assert (record(invoice).state, record(invoice).attempts) == ("sent", 1)


def test_drafts_and_void_invoices_are_not_emailed(
    drafts: list[Invoice], eager: None, committed: Callable[..., Any]
) -> None:
    a, b, _ = drafts
    assert not InvoiceEmail.objects.exists()  # drafts have no e-mail
    invoice_states.issue_invoice(invoice_id=a.pk)  # its on-commit message is lost
    committed(invoice_states.void_invoice, invoice_id=a.pk)
    assert emails.deliver(invoice_id=a.pk).step is emails.Step.SKIPPED
    assert record(a).state == "skipped"
    assert emails.resend(invoice_ids=[a.pk, b.pk]) == 0  # void and draft
    api = staff_client(Invoice)
    assert api.post(f"/api/v1/invoices/{b.pk}/resend-email/").status_code == 409
    assert mail.outbox == []


def test_turning_invoice_emails_off_sends_nothing(
    drafts: list[Invoice], eager: None, committed: Callable[..., Any]
) -> None:
    settings_row = BillingSettings.load()
    settings_row.email_invoices = False
    settings_row.save()
    committed(invoice_states.issue_invoices, invoice_ids=[d.pk for d in drafts])
    assert not InvoiceEmail.objects.exists()
    assert mail.outbox == []
    # Staff can still send one by hand, through the API too.
    sent = committed(staff_client(Invoice).post, f"/api/v1/invoices/{drafts[0].pk}/resend-email/")
    assert sent.status_code == 200, sent.content
    assert body(sent)["email"]["state"] in ("pending", "sent")
    assert len(mail.outbox) == 1


@pytest.mark.both_databases
def test_the_sweep_sends_what_the_broker_lost(drafts: list[Invoice], eager: None) -> None:
    issued_at = timezone.now()
    invoice_states.issue_invoices(
        invoice_ids=[d.pk for d in drafts], now=issued_at
    )  # never enqueued
    assert InvoiceEmail.objects.filter(state="pending").count() == 3
    assert emails.sweep(now=issued_at) == 0  # too young: its message may be on its way
    assert emails.sweep(now=issued_at + timedelta(minutes=5)) == 3
    assert len(mail.outbox) == 3
    assert emails.sweep(now=issued_at + timedelta(minutes=10)) == 0
    assert len(mail.outbox) == 3


def test_a_broker_outage_at_commit_loses_nothing(
    drafts: list[Invoice], monkeypatch: pytest.MonkeyPatch, committed: Callable[..., Any]
) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.send_invoice_emails, "apply_async", broker_down)
    invoice = committed(invoice_states.issue_invoice, invoice_id=drafts[0].pk)
    assert invoice.number == 1  # the issue stands
    assert record(invoice).state == DeliveryState.PENDING  # and the sweep will send it


def test_an_email_that_cannot_be_built_is_parked_and_does_not_hold_up_the_others(
    drafts: list[Invoice],
    eager: None,
    committed: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from usage import pdf

    poisoned = drafts[0].pk
    real = pdf.render_invoice_pdf

    def render(invoice: Invoice) -> bytes:
        if invoice.pk == poisoned:
            raise ValueError("a rendering bug")
        return real(invoice)

    monkeypatch.setattr(pdf, "render_invoice_pdf", render)
    ids = [d.pk for d in drafts]
    committed(invoice_states.issue_invoices, invoice_ids=ids)
    parked = record(drafts[0])
    assert parked.state == DeliveryState.FAILED  # at once: a retry cannot help
    assert parked.last_error == "ValueError: a rendering bug"
    # The other invoices of the same task were sent.
    assert sorted(m.to[0] for m in mail.outbox) == [
        f"customer{d.customer_id}@example.test" for d in drafts[1:]
    ]
    assert emails.sweep(now=timezone.now() + timedelta(days=1)) == 0  # not retried for ever


class OutOfTimeBackend(BaseEmailBackend):
    """A send cut short by the task's soft time limit (Celery raises it inside the call)."""

    calls = 0

    def send_messages(self, email_messages: Any) -> int:
        from celery.exceptions import SoftTimeLimitExceeded

        OutOfTimeBackend.calls += 1
        raise SoftTimeLimitExceeded()


def test_a_task_out_of_time_leaves_its_email_pending_and_stops(
    drafts: list[Invoice], eager: None, committed: Callable[..., Any], settings: Any
) -> None:
    """Celery's soft time limit (a hung SMTP server, many invoices in one task) is not the
    e-mail's fault: the one being sent stays pending for the sweep, never parked as failed,
    and the task stops instead of starting sends the hard limit would cut off."""
    settings.EMAIL_BACKEND = f"{__name__}.OutOfTimeBackend"
    OutOfTimeBackend.calls = 0
    committed(invoice_states.issue_invoices, invoice_ids=[d.pk for d in drafts])
    assert OutOfTimeBackend.calls == 1  # the task stopped at the limit
    states = {(r.state, r.attempts) for r in InvoiceEmail.objects.all()}
    assert states == {(DeliveryState.PENDING, 0)}  # all left to the sweep
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert emails.sweep(now=timezone.now() + timedelta(minutes=5)) == 3
    assert len(mail.outbox) == 3


@pytest.mark.both_databases
def test_the_sweep_stands_back_while_the_workers_have_a_backlog(
    drafts: list[Invoice], eager: None, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.INVOICE_EMAIL_SWEEP_MAX_BACKLOG = 10
    issued_at = timezone.now()
    invoice_states.issue_invoices(
        invoice_ids=[d.pk for d in drafts], now=issued_at
    )  # never enqueued
    later = issued_at + timedelta(minutes=5)
    monkeypatch.setattr(emails.outbox, "backlog", lambda: 11)  # waiting, not lost
    assert emails.sweep(now=later) == 0
    assert mail.outbox == []
    monkeypatch.setattr(emails.outbox, "backlog", lambda: 10)
    assert emails.sweep(now=later) == 3
    assert len(mail.outbox) == 3


def test_the_sweep_sweeps_when_the_broker_cannot_count(
    drafts: list[Invoice], eager: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued_at = timezone.now()
    invoice_states.issue_invoices(invoice_ids=[d.pk for d in drafts], now=issued_at)
    monkeypatch.setattr(emails.outbox, "backlog", lambda: None)
    assert emails.sweep(now=issued_at + timedelta(minutes=5)) == 3


@pytest.mark.django_db
def test_the_broker_counts_the_default_queue_on_redis() -> None:
    from bridge.celery import app
    from bridge.queues import backlog

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)
    before = backlog()
    assert before == 0
    tasks.sweep_invoice_emails.apply_async(countdown=3600)  # waits in the queue
    try:
        assert backlog() == 1
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(app.conf.task_default_queue)


def test_an_invoice_email_on_the_console_logs_no_font_chatter_and_no_pdf_body(
    drafts: list[Invoice], caplog: pytest.LogCaptureFixture
) -> None:
    if not Path(DEJAVU).is_file():
        pytest.skip("no TrueType font here: fpdf2 uses Helvetica and fontTools stays idle")
    invoice_states.issue_invoice(invoice_id=drafts[0].pk)
    invoice = Invoice.objects.select_related("customer").get(pk=drafts[0].pk)
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    message = emails.invoice_message(invoice)  # renders the PDF: fpdf2 subsets the font
    EmailBackend(stream=stream).send_messages([message])
    assert [r.name for r in caplog.records if r.name.startswith("fontTools")] == []
    out = stream.getvalue()
    [(name, pdf, _)] = message.attachments
    assert f"[attachment: {name}, application/pdf, {len(pdf)} bytes]" in out
    assert "Total: $6.06\u00a0USD" in out
    assert len(out) < 1000 < len(pdf)
