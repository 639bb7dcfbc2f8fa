"""The invoice documents staff and customers download: the PDF (Factur-X when the billing
settings say so), the Factur-X PDF and the UBL XML, and the same two e-invoices of a credit
note. What views call; they stay thin."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpResponse

# The module, not its function: the renderer is looked up at each call, so replacing it
# (as the e-mail tests do) reaches every document.
from usage import pdf
from usage.einvoice import schemas
from usage.einvoice.data import EInvoice, EInvoiceError, credit_note_einvoice_of, einvoice_of
from usage.einvoice.facturx import facturx_pdf
from usage.einvoice.ubl import ubl_xml
from usage.models import BillingSettings, CreditNote, Invoice

logger = logging.getLogger(__name__)


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice's PDF: Factur-X for an issued invoice when `einvoice_pdf` is on (a
    draft has no number to put in the XML, so it stays a plain PDF). An invoice whose
    details EN 16931 finds incomplete still gets its plain PDF, so no download or e-mail
    fails for want of, say, a customer's country; the explicit Factur-X download says why."""
    plain = pdf.render_invoice_pdf(invoice)
    if not invoice.number:
        return plain
    return _facturx_if_on(plain, lambda: einvoice_of(invoice), f"invoice {invoice.pk}")


def credit_note_pdf(note: CreditNote) -> bytes:
    """The credit note's PDF, Factur-X on the same terms as `invoice_pdf`."""
    plain = pdf.render_credit_note_pdf(note)
    return _facturx_if_on(plain, lambda: credit_note_einvoice_of(note), f"credit note {note.pk}")


def _facturx_if_on(plain: bytes, data: Callable[[], EInvoice], what: str) -> bytes:
    if not BillingSettings.load().einvoice_pdf:
        return plain
    try:
        return facturx_pdf(plain, data())
    except EInvoiceError as exc:
        logger.warning("%s: plain PDF, not Factur-X: %s", what, exc)
        return plain


def facturx_document(invoice: Invoice) -> bytes:
    """The issued invoice's PDF/A-3 with its CII XML; raises EInvoiceError."""
    return facturx_pdf(pdf.render_invoice_pdf(invoice), einvoice_of(invoice))


def ubl_document(invoice: Invoice) -> bytes:
    """The issued invoice as Peppol BIS Billing 3.0 UBL, checked against the UBL 2.1 XSD."""
    xml = ubl_xml(einvoice_of(invoice))
    schemas.check(xml, schemas.ubl_schema())
    return xml


def credit_note_facturx_document(note: CreditNote) -> bytes:
    """The credit note's PDF/A-3 with its CII XML (type 381); raises EInvoiceError."""
    return facturx_pdf(pdf.render_credit_note_pdf(note), credit_note_einvoice_of(note))


def credit_note_ubl_document(note: CreditNote) -> bytes:
    """The credit note as a Peppol BIS 3.0 UBL CreditNote, checked against its XSD."""
    xml = ubl_xml(credit_note_einvoice_of(note))
    schemas.check(xml, schemas.ubl_credit_note_schema())
    return xml


def attachment(body: bytes, content_type: str, filename: str) -> HttpResponse:
    """A download: `body` saved as `filename`."""
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
