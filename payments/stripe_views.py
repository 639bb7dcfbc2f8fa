"""Stripe's web side: the webhook, "Pay now" on the portal, and the pay page a signed link
from the invoice e-mail or PDF opens. All answer 404 while Stripe is off."""

from __future__ import annotations

import logging

import stripe
from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from payments import services, stripe_pay, tasks
from usage.models import Invoice, InvoiceStatus
from users.decorators import customer_required
from users.models import Customer
from users.selectors import customer_for_request

log = logging.getLogger(__name__)

# Stripe's events are a few kilobytes; anything far larger is not one.
MAX_EVENT_BYTES = 512 * 1024


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt  # Stripe signs the body instead
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, store once, answer; a task does the work (Stripe wants an answer within
    seconds and retries for days without one)."""
    if not stripe_pay.enabled():
        return _error(404, "not_found", "Not found.")
    if len(request.body) > MAX_EVENT_BYTES:
        return _error(413, "too_large", "The event is too large.")
    try:
        row, created = stripe_pay.receive_event(
            request.body, request.headers.get("Stripe-Signature", "")
        )
    except stripe.SignatureVerificationError:
        return _error(400, "bad_signature", "The Stripe-Signature header does not verify.")
    except (ValueError, KeyError, TypeError):
        return _error(400, "bad_payload", "The body is not a Stripe event.")
    if created and row.state == "received":
        transaction.on_commit(lambda: tasks.enqueue_event(row.event_id))
    return JsonResponse({"received": True, "duplicate": not created})


def _return_url(request: HttpRequest, invoice: Invoice) -> str:
    base = settings.BRIDGE_PUBLIC_URL.rstrip("/")
    path = stripe_pay.pay_path(invoice.pk)
    return base + path if base else request.build_absolute_uri(path)


def _checkout(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    try:
        started = stripe_pay.start_checkout(invoice, return_url=_return_url(request, invoice))
    except stripe_pay.CheckoutUnavailable as exc:
        return _pay_page(request, invoice, problem=str(exc), status=409)
    return HttpResponseRedirect(started.url, status=303)


@require_POST
@customer_required
def pay_invoice(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    """ "Pay now" on the portal's invoices page: the signed-in customer's own invoice only."""
    if not stripe_pay.enabled():
        raise Http404
    invoice = (
        Invoice.objects.filter(pk=pk, customer=customer)
        .exclude(status=InvoiceStatus.DRAFT)  # customers never see a draft
        .select_related("customer")
        .first()
    )
    if invoice is None:
        raise Http404
    return _checkout(request, invoice)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def pay_page(request: HttpRequest, token: str) -> HttpResponse:
    """The page a pay link opens. The link names one invoice and signs it; it signs nobody
    in, so it shows only what the e-mail already said and pays only that invoice. GET
    never starts a checkout (mail scanners open links): the button POSTs."""
    if not stripe_pay.enabled():
        raise Http404
    invoice_id = stripe_pay.invoice_id_of(token)
    invoice = (
        Invoice.objects.filter(pk=invoice_id)
        .exclude(status=InvoiceStatus.DRAFT)
        .select_related("customer")
        .first()
        if invoice_id is not None
        else None
    )
    if invoice is None:
        raise Http404
    # Whoever opens the link reads the invoice's language, as its e-mail and PDF speak it.
    with translation.override(invoice.customer.language):
        if request.method == "POST":
            return _checkout(request, invoice)
        return _pay_page(request, invoice)


def _pay_page(
    request: HttpRequest, invoice: Invoice, *, problem: str = "", status: int = 200
) -> HttpResponse:
    balance = services.invoice_balance(invoice)
    if invoice.status == InvoiceStatus.PAID:
        outcome = "paid"
    elif invoice.status == InvoiceStatus.VOID:
        outcome = "void"
    elif request.GET.get("session_id"):
        outcome = "processing"  # back from Stripe before its webhook was processed
    elif request.GET.get("cancelled"):
        outcome = "cancelled"
    else:
        outcome = "open"
    viewer = customer_for_request(request)
    return render(
        request,
        "payments/pay.html",
        {
            # Only the invoice's own customer, signed in, sees the portal around it.
            "customer": viewer if viewer is not None and viewer.pk == invoice.customer_id else None,
            "invoice": invoice,
            "balance": balance,
            "outcome": outcome,
            "can_pay": outcome in ("open", "cancelled", "processing") and balance > 0,
            "problem": problem,
            "title": _("Invoice %(number)s") % {"number": invoice.display_number},
        },
        status=status,
    )
