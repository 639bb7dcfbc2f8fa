"""The invoice PDF as Factur-X (EN 16931): PDF/A-3 with the CII XML embedded, made by the
`factur-x` package from the PDF that usage.pdf draws."""

from __future__ import annotations

from typing import Any

from usage.einvoice import cii, schemas
from usage.einvoice.data import EInvoice


def facturx_pdf(pdf: bytes, data: EInvoice) -> bytes:
    # Imported here: facturx pulls in pypdf, which the close and the e-mails rarely need.
    from facturx import generate_from_binary

    xml = cii.cii_xml(data)
    schemas.check(xml, schemas.cii_schema())
    metadata: dict[str, Any] = {
        "author": data.seller.name or "Billing",
        "keywords": "Factur-X, Invoice",
        "title": f"{data.seller.name}: Invoice {data.number}".strip(": "),
        "subject": f"Invoice {data.number} dated {data.issue_date:%Y-%m-%d}",
    }
    result: bytes = generate_from_binary(
        pdf,
        xml,
        flavor="factur-x",
        level="en16931",
        check_xsd=False,  # checked above, with the error shape this project reports
        pdf_metadata=metadata,
        lang="en",
    )
    return result
