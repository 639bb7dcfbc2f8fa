"""Online payment through Stripe (issue 14 §2): Checkout sessions for an invoice's open
balance, signed pay links for e-mails and PDFs, and the webhook events that record the
payments (payments.services does the recording).

Off unless STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are both set: then nothing shows a
Pay button or a pay link and the webhook answers 404. Every call to Stripe goes through
`client()`, pointed at STRIPE_API_BASE (the fake in tests and the demo).

Amounts go to Stripe as integers in the currency's minor unit as Stripe counts it
(`to_minor`): the balance is rounded half-up (bridge.money.round_money) to the places
Stripe charges in that currency — exact for any currency configured with its ISO decimals.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import stripe
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from payments import services
from payments.minor_units import from_minor, to_minor
from payments.models import (
    PaymentMethod,
    StripeCustomer,
    StripeEvent,
    StripeEventState,
)
from usage import legal
from usage.models import BillingSettings, Invoice, InvoiceStatus

log = logging.getLogger(__name__)

# --- Configuration ---------------------------------------------------------------------


def enabled() -> bool:
    """Both secrets set: without the webhook secret no payment could ever be recorded."""
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


def client() -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT),
    )


# --- Pay links -------------------------------------------------------------------------

_LINK_SALT = "payments.stripe.pay-link"


def pay_token(invoice_id: int) -> str:
    """A token naming one invoice, signed with SECRET_KEY: whoever holds the link (the
    e-mail's recipient) can pay that invoice's open balance, and nothing else. No expiry:
    the PDF keeps the link for good, and it pays only while something is open."""
    return signing.Signer(salt=_LINK_SALT).sign(str(invoice_id))


def invoice_id_of(token: str) -> int | None:
    try:
        value = signing.Signer(salt=_LINK_SALT).unsign(token)
    except signing.BadSignature:
        return None
    return int(value) if value.isdigit() else None


def pay_path(invoice_id: int) -> str:
    return reverse("payments-pay", args=[pay_token(invoice_id)])


def pay_link(invoice: Invoice) -> str:
    """The absolute pay link for e-mails and PDFs; empty while Stripe is off, for a draft,
    or without BRIDGE_PUBLIC_URL (an e-mail cannot carry a relative link)."""
    base = settings.BRIDGE_PUBLIC_URL.rstrip("/")
    if not (enabled() and base and invoice.number and invoice.total > 0):
        return ""
    return base + pay_path(invoice.pk)


def payable(invoice: Invoice) -> bool:
    """Whether to offer "Pay now": Stripe is on and the invoice has something open."""
    return (
        enabled()
        and invoice.status == InvoiceStatus.ISSUED
        and services.invoice_balance(invoice) > 0
    )


# --- Checkout --------------------------------------------------------------------------


class CheckoutUnavailable(Exception):
    """Checkout cannot start; the message is for the customer."""


@dataclass(frozen=True)
class Checkout:
    url: str  # where to send the customer: Stripe's page, or back to ours when paid
    session_id: str
    processing: bool = False  # paid already; the webhook has not been processed yet


def checkout_params(invoice: Invoice, *, return_url: str) -> dict[str, Any]:
    """The Checkout Session for the invoice's open balance, in the customer's language
    (whoever started it: the customer, or anyone with the pay link). `return_url` is
    absolute (the pay page): Stripe sends the customer back to it, paid or cancelled."""
    with translation.override(invoice.customer.language):
        return _checkout_params(invoice, return_url=return_url)


def _checkout_params(invoice: Invoice, *, return_url: str) -> dict[str, Any]:
    balance = services.invoice_balance(invoice)
    if invoice.status != InvoiceStatus.ISSUED or balance <= 0:
        raise CheckoutUnavailable(_("This invoice has nothing left to pay."))
    currency = invoice.currency.lower()
    methods = ["card", "sepa_debit"] if invoice.currency == "EUR" else ["card"]
    metadata = {"invoice_id": str(invoice.pk), "customer_id": str(invoice.customer_id)}
    intent: dict[str, Any] = {
        "metadata": metadata,
        "description": _("Invoice %(number)s") % {"number": invoice.display_number},
    }
    params: dict[str, Any] = {
        "mode": "payment",
        "payment_method_types": methods,
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": to_minor(balance, invoice.currency),
                    "product_data": {
                        "name": _("Invoice %(number)s (%(period)s)")
                        % {
                            "number": invoice.display_number,
                            "period": legal.month_and_year(invoice.period),
                        }
                    },
                },
            }
        ],
        "metadata": metadata,
        "client_reference_id": str(invoice.pk),
        "success_url": _join(return_url, "session_id={CHECKOUT_SESSION_ID}"),
        "cancel_url": _join(return_url, "cancelled=1"),
        "payment_intent_data": intent,
        "locale": invoice.customer.language,  # Stripe's page too: both languages are Stripe's
    }
    saved = StripeCustomer.objects.filter(customer_id=invoice.customer_id).first()
    if saved is not None:
        params["customer"] = saved.stripe_customer_id
    else:
        params["customer_email"] = invoice.customer.email
    if BillingSettings.load().auto_collect:
        # Saved for the next invoices' off-session charges (Checkout asks for consent).
        intent["setup_future_usage"] = "off_session"
        if saved is None:
            params["customer_creation"] = "always"
    return params


def start_checkout(invoice: Invoice, *, return_url: str, now: datetime | None = None) -> Checkout:
    """A Checkout Session for the open balance. A double click, or a second tab, gets the
    same session: the idempotency key is the invoice and exactly what is asked for (so
    the balance too), and Stripe answers a repeated key with the first session."""
    if not enabled():
        raise CheckoutUnavailable(_("Online payment is not available."))
    params = checkout_params(invoice, return_url=return_url)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]
    key = f"checkout-{invoice.pk}-{digest}"
    stripe_client = client()
    try:
        session = stripe_client.v1.checkout.sessions.create(
            cast(Any, params), {"idempotency_key": key}
        )
        replayed = session.last_response and session.last_response.headers.get(
            "Idempotent-Replayed"
        )
        if replayed == "true":
            # Stripe replays the session as it was first created: ask for it as it is now.
            session = stripe_client.v1.checkout.sessions.retrieve(session.id)
        if session.status == "expired":
            # The key outlived its session (both last about a day): a new one this hour.
            hour = int((now or timezone.now()).timestamp()) // 3600
            session = stripe_client.v1.checkout.sessions.create(
                cast(Any, params), {"idempotency_key": f"{key}-{hour}"}
            )
    except stripe.StripeError as exc:
        log.warning("checkout for invoice %s refused by Stripe: %s", invoice.pk, _safe(exc))
        raise CheckoutUnavailable(
            _("Online payment is not available right now; please try again later.")
        ) from exc
    if session.status == "complete":
        # Paid already (the webhook is on its way): back to our page, which says so.
        url = _join(return_url, f"session_id={session.id}")
        return Checkout(url=url, session_id=session.id, processing=True)
    if not session.url:
        raise CheckoutUnavailable(_("Online payment is not available right now."))
    return Checkout(url=session.url, session_id=session.id)


def _join(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _safe(exc: stripe.StripeError) -> str:
    """Stripe's own message (it masks keys itself) with the error code, for logs and staff."""
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}{f' ({code})' if code else ''}: {exc.user_message or exc}"[:480]


# --- Webhook events --------------------------------------------------------------------

HANDLED = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
    }
)


def receive_event(
    payload: bytes, signature: str, *, now: datetime | None = None
) -> tuple[StripeEvent, bool]:
    """Verify the event exactly as Stripe signs it (HMAC-SHA256 of "t.payload" with the
    webhook secret, within STRIPE_WEBHOOK_TOLERANCE seconds) and store it once. Raises
    stripe.SignatureVerificationError or ValueError (not JSON). Returns (row, new)."""
    event = stripe.Webhook.construct_event(
        payload, signature, settings.STRIPE_WEBHOOK_SECRET, settings.STRIPE_WEBHOOK_TOLERANCE
    )
    data = json.loads(payload)
    now = now or timezone.now()
    state = StripeEventState.RECEIVED if event.type in HANDLED else StripeEventState.IGNORED
    row, created = StripeEvent.objects.get_or_create(
        event_id=event.id,
        defaults={
            "type": event.type[:100],
            "payload": data,
            "received_at": now,
            "state": state,
            "note": "" if state == StripeEventState.RECEIVED else "not an event the bridge acts on",
        },
    )
    return row, created


class Transient(Exception):
    """Stripe could not be asked now; the event stays received and is tried again."""


def process_event(event_id: str, *, now: datetime | None = None) -> str:
    """Act on a stored event once; returns its state. Recording is idempotent twice over:
    the event row is finished in the payment's transaction, and the payment is unique on
    its PaymentIntent id, which every event about one payment carries."""
    now = now or timezone.now()
    row = StripeEvent.objects.filter(event_id=event_id).first()
    if row is None or row.state != StripeEventState.RECEIVED:
        return row.state if row is not None else "missing"
    obj = row.payload.get("data", {}).get("object", {})
    kind = row.type
    intent_id = obj.get("payment_intent") if kind.startswith("checkout.") else obj.get("id")
    if kind.endswith("failed"):
        reason = _failure(obj)
        if kind == "payment_intent.payment_failed":
            from payments import collect  # collect builds on this module

            collect.intent_failed(str(obj.get("id", "")), reason, now=now)
        return _finish(row, StripeEventState.FAILED, now, note=reason, invoice_id=_invoice_of(obj))
    if kind == "checkout.session.completed" and obj.get("payment_status") == "no_payment_required":
        return _finish(row, StripeEventState.IGNORED, now, note="nothing to pay")
    if not intent_id:
        return _finish(row, StripeEventState.IGNORED, now, note="no PaymentIntent")
    try:
        intent = client().v1.payment_intents.retrieve(intent_id, {"expand": ["payment_method"]})
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        raise Transient(_safe(exc)) from exc
    except stripe.StripeError as exc:
        return _finish(row, StripeEventState.FAILED, now, note=_safe(exc))
    return _record_intent(row, intent.to_dict(), now)


def _record_intent(row: StripeEvent, intent: dict[str, Any], now: datetime) -> str:
    with transaction.atomic():
        locked = StripeEvent.objects.select_for_update().get(pk=row.pk)
        if locked.state != StripeEventState.RECEIVED:
            return locked.state
        try:
            recorded = record_intent(
                intent,
                received_at=datetime.fromtimestamp(int(row.payload["created"]), UTC),
                note=f"Stripe {row.type} {row.event_id}",
                now=now,
            )
        except NotOurs as exc:
            return _finish(locked, StripeEventState.IGNORED, now, note=str(exc))
        except services.PaymentError as exc:
            log.warning("stripe event %s: payment not recorded: %s", row.event_id, exc)
            invoice_id = _invoice_of(intent)
            return _finish(
                locked, StripeEventState.FAILED, now, note=str(exc), invoice_id=invoice_id
            )
        invoice_id = _invoice_of(intent)
        if recorded is None:
            note = f"payment {intent.get('id')} is {intent.get('status')}; waiting for Stripe"
            return _finish(
                locked, StripeEventState.PROCESSED, now, note=note, invoice_id=invoice_id
            )
        note = "recorded" if recorded.created else "already recorded"
        return _finish(
            locked,
            StripeEventState.PROCESSED,
            now,
            note=f"{note} as payment {recorded.payment.pk}",
            invoice_id=invoice_id,
            payment_id=recorded.payment.pk,
        )


class NotOurs(Exception):
    """A PaymentIntent without the bridge's metadata (another integration's payment)."""


def record_intent(
    intent: dict[str, Any], *, received_at: datetime, note: str, now: datetime
) -> services.Recorded | None:
    """Record a PaymentIntent (expanded payment_method) that succeeded as a payment of
    its invoice; None while it is still processing. Keeps the payment method it saved.
    Idempotent: the payment's reference is the PaymentIntent id."""
    metadata = intent.get("metadata") or {}
    try:
        customer_id = int(metadata["customer_id"])
        invoice_id = int(metadata["invoice_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise NotOurs("not a payment the bridge asked for") from exc
    method = intent.get("payment_method")
    method_type = method.get("type", "") if isinstance(method, dict) else ""
    with transaction.atomic():
        _save_method(customer_id, intent, method_type, now)
        if intent.get("status") != "succeeded":
            return None
        currency = str(intent.get("currency", "")).upper()
        recorded = services.record_payment(
            customer_id=customer_id,
            amount=from_minor(int(intent.get("amount_received") or 0), currency),
            currency=currency,
            method=PaymentMethod.SEPA_DEBIT if method_type == "sepa_debit" else PaymentMethod.CARD,
            received_at=received_at,
            reference=str(intent["id"]),
            invoice_id=invoice_id,
            note=note[:500],
            now=now,
        )
        if recorded.created:
            _settle_collection(invoice_id, str(intent["id"]), now)
    return recorded


def _save_method(customer_id: int, intent: dict[str, Any], method_type: str, now: datetime) -> None:
    """Checkout with setup_future_usage saved the method on a Stripe customer: keep both
    for automatic collection."""
    method = intent.get("payment_method")
    method_id = method.get("id") if isinstance(method, dict) else method
    stripe_customer = intent.get("customer")
    if intent.get("setup_future_usage") != "off_session" or not (method_id and stripe_customer):
        return
    StripeCustomer.objects.update_or_create(
        customer_id=customer_id,
        defaults={
            "stripe_customer_id": stripe_customer,
            "payment_method_id": method_id,
            "payment_method_type": method_type,
            "updated_at": now,
        },
    )


def _settle_collection(invoice_id: int, intent_id: str, now: datetime) -> None:
    from payments.models import CollectionAttempt, CollectionState

    CollectionAttempt.objects.filter(invoice_id=invoice_id, payment_intent_id=intent_id).update(
        state=CollectionState.SUCCEEDED, next_attempt_at=None, error="", updated_at=now
    )


def _failure(obj: dict[str, Any]) -> str:
    error = obj.get("last_payment_error") or {}
    message = error.get("message") or error.get("code") or "the payment failed"
    return f"{obj.get('id', '')}: {message}"[:500]


def _invoice_of(obj: dict[str, Any]) -> int | None:
    try:
        return int((obj.get("metadata") or {})["invoice_id"])
    except (KeyError, TypeError, ValueError):
        return None


def _finish(
    row: StripeEvent,
    state: str,
    now: datetime,
    *,
    note: str = "",
    invoice_id: int | None = None,
    payment_id: int | None = None,
) -> str:
    if invoice_id is not None and not Invoice.objects.filter(pk=invoice_id).exists():
        invoice_id = None  # metadata naming an invoice that is not (or no longer) here
    row.state = state
    row.processed_at = now
    row.note = note[:500]
    row.invoice_id = invoice_id
    row.payment_id = payment_id
    row.save(update_fields=["state", "processed_at", "note", "invoice", "payment"])
    return state
