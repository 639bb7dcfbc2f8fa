"""The customer's invoices under /account/invoices/: issued ones with their PDF, and what
the current month costs so far. Who the customer is comes from users.selectors."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from solusio.errors import SolusIOError
from usage import selectors
from usage.models import Invoice, InvoiceStatus
from usage.pdf import render_invoice_pdf
from users.models import Customer
from users.selectors import customer_for_request

# Drafts are still under review by staff: customers see an invoice once it is issued.
VISIBLE = (InvoiceStatus.ISSUED, InvoiceStatus.PAID, InvoiceStatus.VOID)


def _customer(request: HttpRequest) -> Customer | HttpResponse:
    customer = customer_for_request(request)
    if customer is not None:
        return customer
    if request.user.is_authenticated:
        return render(request, "account/not_a_customer.html", status=403)
    return redirect(f"{reverse('account-login')}?next={request.path}")


@never_cache
@require_safe
def invoices(request: HttpRequest) -> HttpResponse:
    found = _customer(request)
    if isinstance(found, HttpResponse):
        return found
    rows = Invoice.objects.filter(customer=found, status__in=VISIBLE).order_by("-period")
    preview_error = preview = None
    try:
        preview = selectors.preview_invoice(customer_id=found.pk)
    except SolusIOError:
        preview_error = "The current month's usage is not available right now."
    return render(
        request,
        "usage/account_invoices.html",
        {
            "customer": found,
            "invoices": rows,
            "preview": preview,
            "period": preview.period if preview else None,
            "draft": preview.draft if preview else None,
            "preview_error": preview_error,
        },
    )


@never_cache
@require_safe
def invoice_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    found = _customer(request)
    if isinstance(found, HttpResponse):
        return found
    invoice = (
        Invoice.objects.select_related("customer")
        .filter(pk=pk, customer=found, status__in=VISIBLE)
        .first()
    )
    if invoice is None:  # another customer's, or a draft: not found either way
        raise Http404
    response = HttpResponse(render_invoice_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="invoice-{invoice.number:06d}.pdf"'
    return response
