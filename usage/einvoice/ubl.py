"""The e-invoice as OASIS UBL 2.1 Invoice (or CreditNote) XML in the Peppol BIS Billing 3.0
profile."""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from usage.einvoice.data import EInvoice, Party
from usage.einvoice.xmltools import UNIT_ONE, element, price_text

INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
_NS = {"cac": CAC, "cbc": CBC}
CUSTOMIZATION = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
EMAIL_ENDPOINT = "EM"  # Peppol EAS: an e-mail address as the electronic address


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    return element(_NS, parent, tag, text, **attrib)


def _party(parent: etree._Element, tag: str, party: Party) -> None:
    node = _el(_el(parent, tag), "cac:Party")
    if party.email:
        _el(node, "cbc:EndpointID", party.email, schemeID=EMAIL_ENDPOINT)
    _el(_el(node, "cac:PartyName"), "cbc:Name", party.name)
    address = _el(node, "cac:PostalAddress")
    lines = party.address_lines
    for tag_name, text in zip(("cbc:StreetName", "cbc:AdditionalStreetName"), lines, strict=False):
        _el(address, tag_name, text)
    if len(lines) > 2:
        _el(_el(address, "cac:AddressLine"), "cbc:Line", ", ".join(lines[2:]))
    _el(_el(address, "cac:Country"), "cbc:IdentificationCode", party.country)
    if party.vat_id:
        scheme = _el(node, "cac:PartyTaxScheme")
        _el(scheme, "cbc:CompanyID", party.vat_id)
        _el(_el(scheme, "cac:TaxScheme"), "cbc:ID", "VAT")
    legal = _el(node, "cac:PartyLegalEntity")
    _el(legal, "cbc:RegistrationName", party.name)
    if party.registration:  # BT-33, the seller's additional legal information
        _el(legal, "cbc:CompanyLegalForm", party.registration)
    if party.email:
        _el(_el(node, "cac:Contact"), "cbc:ElectronicMail", party.email)


def _category(
    parent: etree._Element,
    tag: str,
    category: str,
    rate: Decimal,
    code: str = "",
    reason: str = "",
) -> None:
    node = _el(parent, tag)
    _el(node, "cbc:ID", category)
    _el(node, "cbc:Percent", price_text(rate))
    if code:
        _el(node, "cbc:TaxExemptionReasonCode", code)
    if reason:
        _el(node, "cbc:TaxExemptionReason", reason)
    _el(_el(node, "cac:TaxScheme"), "cbc:ID", "VAT")


def ubl_xml(data: EInvoice) -> bytes:
    cur = {"currencyID": data.currency}
    # A credit note is UBL's other document: its own root, type code, lines and quantity.
    kind, namespace = ("CreditNote", CREDIT_NOTE) if data.is_credit_note else ("Invoice", INVOICE)
    nsmap = {None: namespace, "cac": CAC, "cbc": CBC}
    root = etree.Element(f"{{{namespace}}}{kind}", nsmap=nsmap)  # type: ignore[dict-item]
    _el(root, "cbc:CustomizationID", CUSTOMIZATION)
    _el(root, "cbc:ProfileID", PROFILE)
    _el(root, "cbc:ID", data.number)
    _el(root, "cbc:IssueDate", data.issue_date.isoformat())
    if data.due_date:
        _el(root, "cbc:DueDate", data.due_date.isoformat())
    _el(root, f"cbc:{kind}TypeCode", data.type_code)
    for note in data.notes:
        _el(root, "cbc:Note", note)
    _el(root, "cbc:DocumentCurrencyCode", data.currency)
    _el(root, "cbc:BuyerReference", data.buyer_reference)
    period = _el(root, "cac:InvoicePeriod")
    _el(period, "cbc:StartDate", data.period_start.isoformat())
    _el(period, "cbc:EndDate", data.period_end.isoformat())
    if data.preceding:
        number, issued = data.preceding
        reference = _el(_el(root, "cac:BillingReference"), "cac:InvoiceDocumentReference")
        _el(reference, "cbc:ID", number)
        _el(reference, "cbc:IssueDate", issued.isoformat())
    _party(root, "cac:AccountingSupplierParty", data.seller)
    _party(root, "cac:AccountingCustomerParty", data.buyer)

    if data.payment_means:
        means = _el(root, "cac:PaymentMeans")
        _el(means, "cbc:PaymentMeansCode", data.payment_means)
        _el(means, "cbc:PaymentID", data.payment_reference or data.number)
        if data.iban:
            _el(_el(means, "cac:PayeeFinancialAccount"), "cbc:ID", data.iban)
    if data.payment_text or data.payment_terms:
        note = "\n".join(t for t in (data.payment_terms, data.payment_text) if t)
        _el(_el(root, "cac:PaymentTerms"), "cbc:Note", note)

    tax_total = _el(root, "cac:TaxTotal")
    _el(tax_total, "cbc:TaxAmount", data.money(data.tax_total), **cur)
    for breakdown in data.taxes:
        subtotal = _el(tax_total, "cac:TaxSubtotal")
        _el(subtotal, "cbc:TaxableAmount", data.money(breakdown.base), **cur)
        _el(subtotal, "cbc:TaxAmount", data.money(breakdown.amount), **cur)
        _category(
            subtotal,
            "cac:TaxCategory",
            breakdown.category,
            breakdown.rate,
            breakdown.exemption_code,
            breakdown.exemption_reason,
        )

    totals = _el(root, "cac:LegalMonetaryTotal")
    _el(totals, "cbc:LineExtensionAmount", data.money(data.subtotal), **cur)
    _el(totals, "cbc:TaxExclusiveAmount", data.money(data.subtotal), **cur)
    _el(totals, "cbc:TaxInclusiveAmount", data.money(data.total), **cur)
    if data.prepaid:
        _el(totals, "cbc:PrepaidAmount", data.money(data.prepaid), **cur)
    _el(totals, "cbc:PayableAmount", data.money(data.due), **cur)

    for line in data.lines:
        node = _el(root, f"cac:{kind}Line")
        _el(node, "cbc:ID", line.id)
        quantity = "cbc:CreditedQuantity" if data.is_credit_note else "cbc:InvoicedQuantity"
        _el(node, quantity, str(line.quantity), unitCode=UNIT_ONE)
        _el(node, "cbc:LineExtensionAmount", data.money(line.amount), **cur)
        line_period = _el(node, "cac:InvoicePeriod")
        _el(line_period, "cbc:StartDate", line.start.isoformat())
        _el(line_period, "cbc:EndDate", line.end.isoformat())
        item = _el(node, "cac:Item")
        _el(item, "cbc:Description", line.description)
        _el(item, "cbc:Name", line.name)
        _category(item, "cac:ClassifiedTaxCategory", data.line_category, data.line_rate)
        price = _el(node, "cac:Price")
        _el(price, "cbc:PriceAmount", price_text(line.net_price), **cur)
        if line.net_price != line.gross_price:
            discount = _el(price, "cac:AllowanceCharge")
            _el(discount, "cbc:ChargeIndicator", "false")
            _el(discount, "cbc:Amount", price_text(line.gross_price - line.net_price), **cur)
            _el(discount, "cbc:BaseAmount", price_text(line.gross_price), **cur)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
