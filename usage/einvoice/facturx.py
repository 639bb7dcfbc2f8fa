"""The invoice PDF as Factur-X (EN 16931): PDF/A-3 with the CII XML embedded, made by the
`factur-x` package from the PDF that usage.pdf draws."""

from __future__ import annotations

from typing import Any

from django.utils import translation
from django.utils.translation import gettext as _

from usage.einvoice import cii, schemas
from usage.einvoice.data import EInvoice
from usage.legal import long_date


def facturx_pdf(pdf: bytes, data: EInvoice) -> bytes:
    # Imported here: facturx pulls in pypdf, which the close and the e-mails rarely need.
    from facturx import generate_from_binary

    xml = cii.cii_xml(data)
    schemas.check(xml, schemas.cii_schema())
    # The PDF's own metadata speaks the invoice's language, as its pages do.
    with translation.override(data.language):
        values = {"number": data.number, "date": long_date(data.issue_date)}
        if data.is_credit_note:
            title = _("Credit note %(number)s") % values
            subject = _("Credit note %(number)s dated %(date)s") % values
        else:
            title = _("Invoice %(number)s") % values
            subject = _("Invoice %(number)s dated %(date)s") % values
        metadata: dict[str, Any] = {
            "author": data.seller.name or "Billing",
            "keywords": "Factur-X, Credit note" if data.is_credit_note else "Factur-X, Invoice",
            "title": f"{data.seller.name}: {title}" if data.seller.name else title,
            "subject": subject,
        }
    result: bytes = generate_from_binary(
        pdf,
        xml,
        flavor="factur-x",
        level="en16931",
        check_xsd=False,  # checked above, with the error shape this project reports
        pdf_metadata=metadata,
        lang=data.language,
    )
    return result
