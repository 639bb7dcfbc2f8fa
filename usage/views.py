"""The customer's invoices and credit notes under /account/invoices/, with their PDFs, and what
the current month costs so far. Who the customer is comes from users.selectors."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from payments.selectors import balance_of, paid_lines, with_paid
from solusio.errors import SolusIOError
from usage import legal, selectors
from usage.einvoice import documents
from usage.einvoice.data import EInvoiceError
from usage.models import CreditNote, Invoice, InvoiceStatus
from usage.pdf import credit_note_filename, credit_note_pdf_response
from usage.rules import PricingSnapshot
from users.decorators import customer_required
from users.models import Customer

# Drafts are still under review by staff: customers see an invoice once it is issued.
VISIBLE = (InvoiceStatus.ISSUED, InvoiceStatus.PAID, InvoiceStatus.VOID)


@never_cache
@require_safe
@customer_required
def invoices(request: HttpRequest, customer: Customer) -> HttpResponse:
    rows = with_paid(Invoice.objects.filter(customer=customer, status__in=VISIBLE)).order_by(
        "-period"
    )
    preview_error = preview = None
    try:
        preview = selectors.preview_invoice(customer_id=customer.pk)
    except SolusIOError:
        preview_error = _("The current month's usage is not available right now.")
    return render(
        request,
        "usage/account_invoices.html",
        {
            "customer": customer,
            "invoices": rows,
            "credit_notes": CreditNote.objects.filter(invoice__customer=customer)
            .select_related("invoice")
            .order_by("-number"),
            "preview": preview,
            "period": preview.period if preview else None,
            "draft": preview.draft if preview else None,
            "preview_error": preview_error,
        },
    )


def _visible_invoice(customer: Customer, pk: int) -> Invoice:
    invoice = (
        Invoice.objects.select_related("customer")
        .filter(pk=pk, customer=customer, status__in=VISIBLE)
        .first()
    )
    if invoice is None:  # another customer's, or a draft: not found either way
        raise Http404
    return invoice


@never_cache
@require_safe
@customer_required
def invoice_detail(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    """One invoice as its PDF states it: its lines, discounts, taxes and total, what was
    paid on it and what is still due, with its downloads and, if open, Pay now."""
    invoice = _visible_invoice(customer, pk)
    return render(
        request,
        "usage/account_invoice.html",
        {
            "customer": customer,
            "invoice": invoice,
            "pricing": PricingSnapshot.from_json(invoice.snapshot),
            "details": legal.details_of(invoice),
            "lines": invoice.lines.order_by("position"),
            "paid_lines": [(line.label, -line.amount) for line in paid_lines(invoice)],
            "balance": balance_of(invoice),
        },
    )


@never_cache
@require_safe
@customer_required
def invoice_pdf(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    invoice = _visible_invoice(customer, pk)
    response = HttpResponse(documents.invoice_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="invoice-{invoice.number:06d}.pdf"'
    return response


@never_cache
@require_safe
@customer_required
def invoice_facturx(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    invoice = _visible_invoice(customer, pk)
    name = f"invoice-{invoice.number:06d}-facturx.pdf"
    try:
        return documents.attachment(documents.facturx_document(invoice), "application/pdf", name)
    except EInvoiceError as exc:
        return _no_einvoice(_("This invoice has no e-invoice yet: %(reason)s.") % {"reason": exc})


def _no_einvoice(message: str) -> HttpResponse:
    return HttpResponse(message, status=409, content_type="text/plain; charset=utf-8")


def _own_credit_note(customer: Customer, pk: int) -> CreditNote:
    note = (
        CreditNote.objects.select_related("invoice", "invoice__customer")
        .filter(pk=pk, invoice__customer=customer)
        .first()
    )
    if note is None:  # another customer's: not found
        raise Http404
    return note


@never_cache
@require_safe
@customer_required
def credit_note_pdf(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    return credit_note_pdf_response(_own_credit_note(customer, pk))


@never_cache
@require_safe
@customer_required
def credit_note_facturx(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    note = _own_credit_note(customer, pk)
    name = f"{credit_note_filename(note)}-facturx.pdf"
    try:
        body = documents.credit_note_facturx_document(note)
    except EInvoiceError as exc:
        return _no_einvoice(
            _("This credit note has no e-invoice yet: %(reason)s.") % {"reason": exc}
        )
    return documents.attachment(body, "application/pdf", name)
