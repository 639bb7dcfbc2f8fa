"""The fake Stripe's objects and rules: Checkout Sessions, PaymentIntents, PaymentMethods
and Customers, shaped like Stripe's JSON, with Stripe's test payment methods'
behaviours (`pm_card_visa` pays, `pm_card_chargeDeclined` is declined,
`pm_card_authenticationRequired` needs the customer). Events are signed like Stripe's."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "2025-10-29.clover"
# Stripe's test payment methods that exist in every account.
TEST_METHODS: dict[str, dict[str, Any]] = {
    "pm_card_visa": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
    "pm_card_chargeDeclined": {"type": "card", "card": {"brand": "visa", "last4": "0002"}},
    "pm_card_authenticationRequired": {"type": "card", "card": {"brand": "visa", "last4": "3184"}},
}
DECLINES = {
    "pm_card_chargeDeclined": ("card_declined", "Your card was declined."),
    "pm_card_authenticationRequired": (
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
}
# Stripe refuses charges below about half a dollar; in minor units of any currency here.
MINIMUM_AMOUNT = 50


class StripeFault(Exception):
    """An error answer, shaped like Stripe's `{"error": {...}}`."""

    def __init__(self, status: int, type_: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message, **extra}}


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def sign(payload: str, secret: str, timestamp: int) -> str:
    """The Stripe-Signature header: HMAC-SHA256 of "timestamp.payload" with the secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass
class Delivery:
    event: dict[str, Any]
    status: int | None = None  # the endpoint's answer; None: not reached
    error: str = ""


@dataclass
class FakeState:
    secret_key: str
    webhook_secret: str
    webhook_url: str = ""
    root: str = ""  # this server's own address, for hosted page URLs
    lock: threading.RLock = field(default_factory=threading.RLock)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotent: dict[str, tuple[str, int, Any]] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    # --- Checkout ------------------------------------------------------------------------

    def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "payment":
            raise StripeFault(400, "invalid_request_error", "Only mode=payment is supported.")
        items = params.get("line_items") or []
        if not isinstance(items, list) or not items:
            raise StripeFault(400, "invalid_request_error", "Missing required param: line_items.")
        currency, total = "", 0
        for item in items:
            price = item.get("price_data") or {}
            currency = str(price.get("currency", ""))
            try:
                total += int(price["unit_amount"]) * int(item.get("quantity", 1))
            except (KeyError, ValueError) as exc:
                raise StripeFault(
                    400,
                    "invalid_request_error",
                    "Invalid integer: unit_amount.",
                    param="line_items",
                ) from exc
        if currency != currency.lower() or len(currency) != 3:
            raise StripeFault(400, "invalid_request_error", f"Invalid currency: {currency}.")
        if total < MINIMUM_AMOUNT:
            raise StripeFault(
                400, "invalid_request_error", "The Checkout Session's total amount is too small.",
                code="amount_too_small",
            )  # fmt: skip
        types = params.get("payment_method_types") or ["card"]
        if "sepa_debit" in types and currency != "eur":
            raise StripeFault(
                400,
                "invalid_request_error",
                f"The currency provided ({currency}) is invalid for one or more payment "
                "method types: sepa_debit.",
            )
        for name in ("success_url", "cancel_url"):
            if not str(params.get(name, "")).startswith(("http://", "https://")):
                raise StripeFault(400, "invalid_request_error", f"Not a valid URL: {name}.")
        if params.get("customer") and params.get("customer_email"):
            raise StripeFault(
                400, "invalid_request_error", "You may only specify one of these parameters: "
                "customer, customer_email.",
            )  # fmt: skip
        customer = params.get("customer")
        if customer and customer not in self.customers:
            raise StripeFault(404, "invalid_request_error", f"No such customer: '{customer}'",
                              code="resource_missing")  # fmt: skip
        session_id = new_id("cs")
        now = int(time.time())
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "url": f"{self.root}/checkout/{session_id}",
            "amount_total": total,
            "currency": currency,
            "line_items_summary": [
                ((i.get("price_data") or {}).get("product_data") or {}).get("name", "")
                for i in items
            ],
            "metadata": params.get("metadata") or {},
            "client_reference_id": params.get("client_reference_id"),
            "customer": customer,
            "customer_email": params.get("customer_email"),
            "customer_creation": params.get("customer_creation"),
            "payment_intent": None,
            "payment_intent_data": params.get("payment_intent_data") or {},
            "payment_method_types": types,
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "created": now,
            "expires_at": now + 24 * 3600,
            "livemode": False,
        }
        self.sessions[session_id] = session
        return session

    def session(self, session_id: str) -> dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            raise StripeFault(404, "invalid_request_error", f"No such checkout.session: "
                              f"'{session_id}'", code="resource_missing")  # fmt: skip
        if session["status"] == "open" and session["expires_at"] < time.time():
            session["status"] = "expired"
        return session

    def pay_session(self, session_id: str, method_type: str) -> list[dict[str, Any]]:
        """The customer pressed Pay: the card is charged at once, a SEPA debit is accepted
        and settles later (settle_intent). Returns the events to send."""
        session = self.session(session_id)
        if session["status"] != "open":
            raise StripeFault(
                400, "invalid_request_error", "This Checkout Session is no longer open."
            )
        if method_type not in session["payment_method_types"]:
            raise StripeFault(400, "invalid_request_error", f"{method_type} is not offered here.")
        intent_data = session["payment_intent_data"]
        customer = session["customer"]
        if customer is None and (
            session["customer_creation"] == "always" or intent_data.get("setup_future_usage")
        ):
            customer = self.create_customer({"email": session["customer_email"]})["id"]
        method = self.create_method(method_type, customer)
        intent = self._intent(
            amount=session["amount_total"],
            currency=session["currency"],
            customer=customer,
            method=method["id"],
            metadata=intent_data.get("metadata") or {},
            description=intent_data.get("description"),
            setup_future_usage=intent_data.get("setup_future_usage"),
        )
        intent["status"] = "succeeded" if method_type == "card" else "processing"
        if intent["status"] == "succeeded":
            intent["amount_received"] = intent["amount"]
        session.update(
            status="complete",
            payment_status="paid" if intent["status"] == "succeeded" else "unpaid",
            payment_intent=intent["id"],
            customer=customer,
        )
        events = [self.event("checkout.session.completed", session)]
        if intent["status"] == "succeeded":
            events.append(self.event("payment_intent.succeeded", intent))
        return events

    # --- PaymentIntents ------------------------------------------------------------------

    def _intent(self, **fields: Any) -> dict[str, Any]:
        intent = {
            "id": new_id("pi"),
            "object": "payment_intent",
            "amount": fields["amount"],
            "amount_received": 0,
            "currency": fields["currency"],
            "customer": fields.get("customer"),
            "payment_method": fields.get("method"),
            "metadata": fields.get("metadata") or {},
            "description": fields.get("description"),
            "setup_future_usage": fields.get("setup_future_usage"),
            "status": "requires_payment_method",
            "last_payment_error": None,
            "created": int(time.time()),
            "livemode": False,
        }
        self.intents[intent["id"]] = intent
        return intent

    def create_intent(self, params: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """An off-session charge (confirm=true). Returns the intent and its events; a
        decline raises a card_error carrying the intent, as Stripe's 402 does."""
        try:
            amount = int(params["amount"])
        except (KeyError, ValueError) as exc:
            raise StripeFault(
                400, "invalid_request_error", "Missing required param: amount."
            ) from exc
        if amount < MINIMUM_AMOUNT:
            raise StripeFault(400, "invalid_request_error", "Amount must be at least 50 units.",
                              code="amount_too_small")  # fmt: skip
        method_id = str(params.get("payment_method", ""))
        method = self.method(method_id)
        customer = params.get("customer")
        if method_id not in TEST_METHODS and method.get("customer") != customer:
            raise StripeFault(400, "invalid_request_error", "The PaymentMethod is not attached "
                              "to this customer.", code="resource_missing")  # fmt: skip
        intent = self._intent(
            amount=amount,
            currency=str(params.get("currency", "")),
            customer=customer,
            method=method_id,
            metadata=params.get("metadata") or {},
            description=params.get("description"),
        )
        if str(params.get("confirm", "")).lower() != "true":
            return intent, []
        decline = DECLINES.get(method_id)
        if decline is not None:
            code, message = decline
            intent["last_payment_error"] = {"type": "card_error", "code": code, "message": message}
            events = [self.event("payment_intent.payment_failed", intent)]
            raise _Declined(
                StripeFault(402, "card_error", message, code=code, payment_intent=dict(intent)),
                events,
            )
        if method["type"] == "sepa_debit":
            intent["status"] = "processing"
            return intent, [self.event("payment_intent.processing", intent)]
        intent.update(status="succeeded", amount_received=amount)
        return intent, [self.event("payment_intent.succeeded", intent)]

    def intent(self, intent_id: str, expand: list[str] | None = None) -> dict[str, Any]:
        intent = self.intents.get(intent_id)
        if intent is None:
            raise StripeFault(404, "invalid_request_error", f"No such payment_intent: "
                              f"'{intent_id}'", code="resource_missing")  # fmt: skip
        shown = dict(intent)
        if "payment_method" in (expand or []) and intent["payment_method"]:
            shown["payment_method"] = self.method(intent["payment_method"])
        return shown

    def settle_intent(self, intent_id: str, outcome: str) -> list[dict[str, Any]]:
        """A SEPA debit's money arrived (or the debit was returned)."""
        intent = self.intents[intent_id]
        if intent["status"] != "processing":
            raise StripeFault(400, "invalid_request_error", "The PaymentIntent is not processing.")
        session = next(
            (s for s in self.sessions.values() if s["payment_intent"] == intent_id), None
        )
        events = []
        if outcome == "succeeded":
            intent.update(status="succeeded", amount_received=intent["amount"])
            if session is not None:
                session["payment_status"] = "paid"
                events.append(self.event("checkout.session.async_payment_succeeded", session))
            events.append(self.event("payment_intent.succeeded", intent))
        else:
            intent.update(
                status="requires_payment_method",
                last_payment_error={"type": "card_error", "code": "insufficient_funds",
                                    "message": "The debit was returned: insufficient funds."},
            )  # fmt: skip
            if session is not None:
                events.append(self.event("checkout.session.async_payment_failed", session))
            events.append(self.event("payment_intent.payment_failed", intent))
        return events

    # --- Customers and methods -----------------------------------------------------------

    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer: dict[str, Any] = {
            "id": new_id("cus"),
            "object": "customer",
            "email": params.get("email"),
            "created": int(time.time()),
            "livemode": False,
        }
        self.customers[customer["id"]] = customer
        return customer

    def customer(self, customer_id: str) -> dict[str, Any]:
        if customer_id not in self.customers:
            raise StripeFault(404, "invalid_request_error", f"No such customer: "
                              f"'{customer_id}'", code="resource_missing")  # fmt: skip
        return self.customers[customer_id]

    def create_method(self, method_type: str, customer: str | None) -> dict[str, Any]:
        details: dict[str, Any] = (
            {"card": {"brand": "visa", "last4": "4242"}}
            if method_type == "card"
            else {"sepa_debit": {"country": "DE", "last4": "3000"}}
        )
        method = {
            "id": new_id("pm"),
            "object": "payment_method",
            "type": method_type,
            "customer": customer,
            **details,
        }
        self.methods[method["id"]] = method
        return method

    def method(self, method_id: str) -> dict[str, Any]:
        if method_id in TEST_METHODS:
            return {"id": method_id, "object": "payment_method", **TEST_METHODS[method_id]}
        if method_id not in self.methods:
            raise StripeFault(404, "invalid_request_error", f"No such PaymentMethod: "
                              f"'{method_id}'", code="resource_missing")  # fmt: skip
        return self.methods[method_id]

    # --- Events --------------------------------------------------------------------------

    def event(self, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": json.loads(json.dumps(obj))},  # a snapshot, as Stripe's
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }


class _Declined(Exception):
    def __init__(self, fault: StripeFault, events: list[dict[str, Any]]) -> None:
        super().__init__(str(fault))
        self.fault = fault
        self.events = events
