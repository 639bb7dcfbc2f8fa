"""Automatic collection (issue 14 §2): with *collect automatically* on, an issued invoice
is charged off-session to the payment method its customer saved at checkout.

One CollectionAttempt row per try, written before Stripe is called; its idempotency key is
the invoice and the attempt number, so a retry of a call whose answer was lost (Stripe
unreachable: the attempt stays pending) can never charge twice. A declined charge is tried
again STRIPE_COLLECT_RETRY_DAYS later, as a new attempt, until they run out; one that needs
the customer (3-D Secure) is not retried: the pay link in the invoice e-mail is their way.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments import minor_units, services, stripe_pay
from payments.models import CollectionAttempt, CollectionState, StripeCustomer
from usage.models import BillingSettings, Invoice, InvoiceStatus

log = logging.getLogger(__name__)

# Stripe unreachable: the same attempt (same key) is asked again this much later.
UNKNOWN_OUTCOME_RETRY = timedelta(minutes=15)
# Declines the customer has to act on: another off-session try would fail the same way.
NEEDS_CUSTOMER = frozenset(
    {"authentication_required", "expired_card", "payment_method_unactivated"}
)


def active() -> bool:
    return stripe_pay.enabled() and BillingSettings.load().auto_collect


def after_issue(*, invoice_ids: list[int]) -> int:
    """Ask for a charge of each newly issued invoice whose customer saved a payment method
    (once the issue commits). One query; nothing at all while the feature is off."""
    if not invoice_ids or not active():
        return 0
    due = list(
        Invoice.objects.filter(
            pk__in=invoice_ids,
            status=InvoiceStatus.ISSUED,
            customer__stripe__payment_method_id__gt="",
        ).values_list("pk", flat=True)
    )
    if due:
        from payments import tasks

        transaction.on_commit(lambda: tasks.collect_invoices.delay(due))
    return len(due)


def collect(*, invoice_id: int, now: datetime | None = None) -> CollectionAttempt | None:
    """Charge the invoice's open balance off-session, if one is due. Returns the attempt
    made (or asked again), None when there was nothing to do."""
    now = now or timezone.now()
    if not active():
        return None
    invoice = Invoice.objects.filter(pk=invoice_id, status=InvoiceStatus.ISSUED).first()
    saved = (
        StripeCustomer.objects.filter(customer_id=invoice.customer_id).first() if invoice else None
    )
    if invoice is None or saved is None or not saved.payment_method_id:
        return None
    row = _attempt_due(invoice, now)
    if row is None:
        return None
    return _charge(row, invoice, saved, now)


def _attempt_due(invoice: Invoice, now: datetime) -> CollectionAttempt | None:
    last = CollectionAttempt.objects.filter(invoice=invoice).order_by("-attempt").first()
    if last is not None and last.state == CollectionState.PENDING:
        # Outcome unknown: ask again with the same key (and amount), when due.
        return last if last.next_attempt_at is None or last.next_attempt_at <= now else None
    if last is not None and (
        last.state != CollectionState.FAILED
        or last.next_attempt_at is None
        or last.next_attempt_at > now
    ):
        return None
    balance = services.invoice_balance(invoice)
    if balance <= 0:
        return None
    try:
        with transaction.atomic():
            if last is not None:
                CollectionAttempt.objects.filter(pk=last.pk).update(next_attempt_at=None)
            return CollectionAttempt.objects.create(
                invoice=invoice,
                attempt=(last.attempt if last else 0) + 1,
                amount=balance,
                currency=invoice.currency,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        return None  # another worker made this attempt


def _charge(
    row: CollectionAttempt, invoice: Invoice, saved: StripeCustomer, now: datetime
) -> CollectionAttempt:
    params: dict[str, Any] = {
        "amount": minor_units.to_minor(Decimal(row.amount), row.currency),
        "currency": row.currency.lower(),
        "customer": saved.stripe_customer_id,
        "payment_method": saved.payment_method_id,
        "payment_method_types": [saved.payment_method_type or "card"],
        "confirm": True,
        "off_session": True,
        "description": f"Invoice {invoice.display_number}",
        "metadata": {
            "invoice_id": str(invoice.pk),
            "customer_id": str(invoice.customer_id),
            "collection_attempt": str(row.attempt),
        },
    }
    key = f"collect-{invoice.pk}-{row.attempt}"
    try:
        intent = stripe_pay.client().v1.payment_intents.create(
            cast(Any, params), {"idempotency_key": key}
        )
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        return _update(
            row,
            CollectionState.PENDING,
            now,
            error=stripe_pay._safe(exc),
            next_attempt_at=now + UNKNOWN_OUTCOME_RETRY,
        )
    except stripe.CardError as exc:
        intent_id = _intent_of(exc)
        retry = None if exc.code in NEEDS_CUSTOMER else _next_try(row.attempt, now)
        return _update(
            row,
            CollectionState.FAILED,
            now,
            error=stripe_pay._safe(exc),
            next_attempt_at=retry,
            intent_id=intent_id,
        )
    except stripe.StripeError as exc:
        # A request Stripe refuses (a detached method, an amount below its minimum): asking
        # again would be refused the same way, so staff see it.
        return _update(row, CollectionState.FAILED, now, error=stripe_pay._safe(exc))
    data = intent.to_dict()
    if data.get("status") == "succeeded":
        data["payment_method"] = {"id": saved.payment_method_id, "type": saved.payment_method_type}
        try:
            stripe_pay.record_intent(
                data, received_at=now, note=f"Automatic collection {row.attempt}", now=now
            )
        except services.PaymentError as exc:
            # The money was taken: never charge again; staff see why it is not recorded.
            error = f"charged, but not recorded: {exc}"
            return _update(row, CollectionState.SUCCEEDED, now, error=error, intent_id=intent.id)
        return _update(row, CollectionState.SUCCEEDED, now, intent_id=intent.id)
    if data.get("status") == "processing":  # SEPA: the webhook says how it ends
        return _update(row, CollectionState.PROCESSING, now, intent_id=intent.id)
    return _update(
        row,
        CollectionState.FAILED,
        now,
        error=f"the payment needs the customer ({data.get('status')})",
        intent_id=intent.id,
    )


def intent_failed(intent_id: str, reason: str, *, now: datetime) -> None:
    """A collection Stripe accepted failed later (a SEPA debit returned): retry when due."""
    for row in CollectionAttempt.objects.filter(
        payment_intent_id=intent_id, state=CollectionState.PROCESSING
    ):
        _update(
            row,
            CollectionState.FAILED,
            now,
            error=reason,
            next_attempt_at=_next_try(row.attempt, now),
        )


def sweep(*, now: datetime | None = None) -> int:
    """Try every collection whose retry is due. Returns how many were tried."""
    now = now or timezone.now()
    if not active():
        return 0
    due = (
        CollectionAttempt.objects.filter(next_attempt_at__lte=now)
        .values_list("invoice_id", flat=True)
        .distinct()
    )
    return sum(1 for invoice_id in list(due) if collect(invoice_id=invoice_id, now=now))


def _next_try(attempt: int, now: datetime) -> datetime | None:
    days = settings.STRIPE_COLLECT_RETRY_DAYS
    return now + timedelta(days=days[attempt - 1]) if attempt <= len(days) else None


def _intent_of(exc: stripe.StripeError) -> str:
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    intent = (body.get("error") or {}).get("payment_intent") or {}
    return str(intent.get("id", "")) if isinstance(intent, dict) else ""


def _update(
    row: CollectionAttempt,
    state: str,
    now: datetime,
    *,
    error: str = "",
    next_attempt_at: datetime | None = None,
    intent_id: str = "",
) -> CollectionAttempt:
    row.state = state
    row.error = error[:500]
    row.next_attempt_at = next_attempt_at
    row.updated_at = now
    if intent_id:
        row.payment_intent_id = intent_id
    row.save(update_fields=["state", "error", "next_attempt_at", "updated_at", "payment_intent_id"])
    if state == CollectionState.FAILED:
        log.warning(
            "automatic collection %s of invoice %s failed: %s",
            row.attempt,
            row.invoice_id,
            row.error,
        )
    return row
