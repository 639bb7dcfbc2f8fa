"""Dunning on real money (issue 14 §4): reminders at days from the due date, one per step,
sent through an outbox; payments stop them, and settling the balance reactivates."""

import smtplib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import translation

from bridge.models import DeliveryState
from payments import reminders, selectors, services
from payments.models import Reminder
from payments.tests.conftest import ISSUED, received
from usage import dunning, tasks
from usage.models import BillingSettings, Invoice, InvoiceStatus, validate_reminder_days
from usage.tests.test_invoice_email import eager  # noqa: F401 - a fixture
from usage.tests.test_preview_and_account import _login
from users.models import Customer, CustomerStatus

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
DUE = datetime(2026, 11, 15, 9, tzinfo=UTC)  # issued 1 November, 14 days' terms


@pytest.fixture
def sweep(
    django_capture_on_commit_callbacks: Any,
    eager: None,  # noqa: F811 - the fixture imported above
) -> Callable[[datetime], int]:
    """The dunning sweep's reminder step at `now`, its deliveries run as a worker would."""

    def run(now: datetime) -> int:
        with (
            time_machine.travel(now, tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            return reminders.record_due(now=now)

    return run


def plain(text: object) -> str:
    return str(text).replace("\xa0", " ")  # bridge.money's non-breaking spaces


def pay(customer: Customer, amount: str, at: datetime, reference: str) -> services.Recorded:
    return received(customer, amount, reference, at=at)


def test_reminder_days_are_validated() -> None:
    assert BillingSettings(reminder_days=" 7, -3,1 ,7").reminder_offsets() == [-3, 1, 7]
    assert BillingSettings(reminder_days="").reminder_offsets() == []
    validate_reminder_days("-3, 1, 7")
    for bad in ("soon", "1, 2.5", "400"):
        with pytest.raises(ValidationError, match="Whole days from the due date"):
            validate_reminder_days(bad)


def test_reminders_follow_the_schedule_once_each_until_paid(
    customer: Customer, issue: Callable[..., Invoice], sweep: Callable[[datetime], int]
) -> None:
    invoice = issue(customer, 10, "100.00")
    assert sweep(DUE - 4 * DAY) == 0  # -3 days not reached yet
    assert sweep(DUE - 3 * DAY) == 1
    [first] = mail.outbox
    assert first.subject == "Invoice INV-000001 is due on 15 November 2026"
    assert "Amount due: $100.00 USD" in plain(first.body)
    assert first.to == ["ann@example.test"]
    assert sweep(DUE - 2 * DAY) == 0  # the same step: nothing twice
    assert sweep(DUE) == 0

    pay(customer, "40.00", DUE, "BANK-1")
    assert sweep(DUE + DAY) == 1
    second = mail.outbox[-1]
    assert second.subject == "Payment reminder: invoice INV-000001"
    assert "Amount due: $60.00 USD" in plain(second.body)  # the balance, not the total
    assert [(r.number, r.days, r.state) for r in Reminder.objects.order_by("id")] == [
        (1, -3, DeliveryState.SENT),
        (2, 1, DeliveryState.SENT),
    ]
    step = selectors.dunning_step(customer)
    assert step is not None
    assert step.label == "Reminder 2 sent 2026-11-16 (INV-000001, 1 day after the due date)"
    home = _login(customer).get("/account/").content.decode()
    assert f'<p class="dunning-step">{step.label}</p>' in home

    pay(customer, "60.00", DUE + 2 * DAY, "BANK-2")
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID
    assert sweep(DUE + 30 * DAY) == 0  # paid: no further reminders
    assert len(mail.outbox) == 2
    assert selectors.dunning_step(customer) is None


def test_a_reminder_for_an_invoice_paid_before_it_went_out_is_skipped(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    issue(customer, 10, "100.00")
    assert reminders.record_due(now=DUE + DAY) == 1  # not delivered: no commit here
    pay(customer, "100.00", DUE + DAY, "BANK-1")
    [reminder] = Reminder.objects.all()
    outcome = reminders.deliver(reminder_id=reminder.pk, now=DUE + DAY)
    assert outcome.step.value == "skipped"
    reminder.refresh_from_db()
    assert (reminder.state, reminder.attempts) == (DeliveryState.SKIPPED, 0)
    assert mail.outbox == []


def test_a_late_schedule_sends_only_the_newest_step(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    issue(customer, 10, "100.00")
    assert reminders.record_due(now=DUE + 10 * DAY) == 1
    [reminder] = Reminder.objects.all()
    assert (reminder.number, reminder.days) == (3, 7)
    assert reminders.record_due(now=DUE + 11 * DAY) == 0
    BillingSettings.objects.update_or_create(pk=1, defaults={"reminder_days": ""})
    issue(customer, 11, "5.00")
    assert reminders.record_due(now=DUE + 60 * DAY) == 0  # turned off


class RefusingBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Any) -> int:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def test_a_refused_reminder_is_retried_then_parked(
    customer: Customer, issue: Callable[..., Invoice], settings: Any
) -> None:
    settings.EMAIL_BACKEND = "payments.tests.test_reminders.RefusingBackend"
    settings.REMINDER_EMAIL_MAX_ATTEMPTS = 2
    issue(customer, 10, "100.00")
    reminders.record_due(now=DUE + DAY)
    [reminder] = Reminder.objects.all()
    first = reminders.deliver(reminder_id=reminder.pk, now=DUE + DAY)
    assert first.step.value == "wait"
    assert first.retry_in is not None
    assert first.retry_in > 0
    reminder.refresh_from_db()
    assert (reminder.state, reminder.attempts) == (DeliveryState.PENDING, 1)
    assert "SMTPServerDisconnected" in reminder.last_error
    # Not due again before its backoff ends.
    assert reminders.deliver(reminder_id=reminder.pk, now=DUE + DAY).step.value == "idle"
    later = DUE + 2 * DAY
    assert reminders.deliver(reminder_id=reminder.pk, now=later).step.value == "parked"
    reminder.refresh_from_db()
    assert (reminder.state, reminder.attempts) == (DeliveryState.FAILED, 2)


def test_unpaid_suspends_a_partial_payment_does_not_reactivate_the_full_one_does(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    BillingSettings.objects.update_or_create(pk=1, defaults={"dunning_days": 20})
    issue(customer, 10, "100.00")
    suspended_at = ISSUED + 20 * DAY
    assert dunning.sweep(now=suspended_at) == 1
    assert Customer.objects.get(pk=customer.pk).status == CustomerStatus.SUSPENDED
    step = selectors.dunning_step(Customer.objects.get(pk=customer.pk))
    assert step is not None
    assert (step.label, step.suspended) == ("Suspended since 2026-11-21", True)

    pay(customer, "99.99", suspended_at + DAY, "BANK-1")
    assert Customer.objects.get(pk=customer.pk).status == CustomerStatus.SUSPENDED
    pay(customer, "0.01", suspended_at + 2 * DAY, "BANK-2")
    assert Customer.objects.get(pk=customer.pk).status == CustomerStatus.ACTIVE
    assert selectors.dunning_step(Customer.objects.get(pk=customer.pk)) is None
    [owed] = selectors.balances(customer.pk)
    assert (owed.owed, owed.credit, plain(owed.owed_text)) == (0, 0, "$0.00 USD")


def test_the_beat_sweep_applies_credit_left_unused(
    customer: Customer, issue: Callable[..., Invoice], monkeypatch: pytest.MonkeyPatch
) -> None:
    pay(customer, "150.00", ISSUED - DAY, "BANK-1")  # in credit before any invoice
    # A crash between issuing and applying the credit: issue without it.
    monkeypatch.setattr(services, "apply_credit", lambda **kw: [])
    invoice = issue(customer, 10, "100.00")
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.ISSUED
    monkeypatch.undo()
    with time_machine.travel(DUE + DAY, tick=False):
        tasks.dunning_sweep()
        tasks.dunning_sweep()  # idempotent
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID
    assert not Reminder.objects.exists()  # settled first, so never reminded
    assert services.credit(customer.pk, "USD") == Decimal("50.00")


def test_a_german_customer_is_reminded_in_german(
    customer: Customer, issue: Callable[..., Invoice], sweep: Callable[[datetime], int]
) -> None:
    Customer.objects.filter(pk=customer.pk).update(language="de")
    issue(customer, 10, "100.00")
    assert sweep(DUE - 3 * DAY) == 1
    [before] = mail.outbox
    assert before.subject == "Rechnung INV-000001 ist am 15.11.2026 fällig"
    body = plain(before.body)
    assert body.startswith(
        "Hallo ann@example.test,\n\n"
        "wir möchten Sie freundlich daran erinnern, dass die Rechnung INV-000001 am "
        "15.11.2026 fällig ist.\n"
        "Offener Betrag: $100,00 USD\n"
    ), body
    assert "Falls Sie inzwischen bezahlt haben, vielen Dank" in body

    assert sweep(DUE + DAY) == 1
    after = mail.outbox[-1]
    assert after.subject == "Zahlungserinnerung: Rechnung INV-000001"
    assert "wir haben die am 15.11.2026 fällige Rechnung INV-000001 noch nicht" in plain(after.body)
    home = _login(Customer.objects.get(pk=customer.pk)).get("/account/").content.decode()
    assert (
        '<p class="dunning-step">Erinnerung 2 gesendet am 16.11.2026 '
        "(INV-000001, 1 Tag nach dem Fälligkeitsdatum)</p>"
    ) in home
    # The sweep ran in English (the worker's language); only the e-mails were German.
    step = selectors.dunning_step(customer)
    assert step is not None
    assert step.label.startswith("Reminder 2 sent 2026-11-16")


def test_step_labels_count_days_in_each_language() -> None:
    labels = [Reminder(days=days).step_label for days in (-3, -1, 0, 1, 7)]
    assert labels == [
        "3 days before the due date",
        "1 day before the due date",
        "on the due date",
        "1 day after the due date",
        "7 days after the due date",
    ]
    with translation.override("de"):
        assert [Reminder(days=days).step_label for days in (-3, -1, 0, 7)] == [
            "3 Tage vor dem Fälligkeitsdatum",
            "1 Tag vor dem Fälligkeitsdatum",
            "am Fälligkeitsdatum",
            "7 Tage nach dem Fälligkeitsdatum",
        ]
