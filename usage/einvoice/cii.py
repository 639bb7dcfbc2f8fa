"""The e-invoice as UN/CEFACT Cross Industry Invoice XML, Factur-X 1.0 / ZUGFeRD 2 profile
EN 16931 (the XML that facturx.py embeds in the PDF)."""

from __future__ import annotations

from datetime import date

from lxml import etree

from usage.einvoice.data import EInvoice, Party
from usage.einvoice.xmltools import UNIT_ONE, element, price_text

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
NSMAP = {"rsm": RSM, "ram": RAM, "qdt": QDT, "udt": UDT}
EN16931 = "urn:cen.eu:en16931:2017"


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    return element(NSMAP, parent, tag, text, **attrib)


def _date(parent: etree._Element, tag: str, value: date) -> None:
    _el(_el(parent, tag), "udt:DateTimeString", f"{value:%Y%m%d}", format="102")


def _party(parent: etree._Element, tag: str, party: Party) -> None:
    node = _el(parent, tag)
    _el(node, "ram:Name", party.name)
    if party.registration:  # BT-33, the seller's additional legal information
        _el(node, "ram:Description", party.registration)
    address = _el(node, "ram:PostalTradeAddress")
    lines = party.address_lines
    for tag_name, text in zip(("ram:LineOne", "ram:LineTwo"), lines[:2], strict=False):
        _el(address, tag_name, text)
    if len(lines) > 2:
        _el(address, "ram:LineThree", ", ".join(lines[2:]))
    _el(address, "ram:CountryID", party.country)
    if party.email:
        _el(_el(node, "ram:URIUniversalCommunication"), "ram:URIID", party.email, schemeID="EM")
    if party.vat_id:
        _el(_el(node, "ram:SpecifiedTaxRegistration"), "ram:ID", party.vat_id, schemeID="VA")


def cii_xml(data: EInvoice) -> bytes:
    root = etree.Element(f"{{{RSM}}}CrossIndustryInvoice", nsmap=NSMAP)
    context = _el(root, "rsm:ExchangedDocumentContext")
    _el(_el(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", EN16931)

    document = _el(root, "rsm:ExchangedDocument")
    _el(document, "ram:ID", data.number)
    _el(document, "ram:TypeCode", data.type_code)
    _date(document, "ram:IssueDateTime", data.issue_date)
    for note in data.notes:
        _el(_el(document, "ram:IncludedNote"), "ram:Content", note)

    transaction = _el(root, "rsm:SupplyChainTradeTransaction")
    for line in data.lines:
        item = _el(transaction, "ram:IncludedSupplyChainTradeLineItem")
        _el(_el(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", line.id)
        product = _el(item, "ram:SpecifiedTradeProduct")
        _el(product, "ram:Name", line.name)
        _el(product, "ram:Description", line.description)
        agreement = _el(item, "ram:SpecifiedLineTradeAgreement")
        gross = _el(agreement, "ram:GrossPriceProductTradePrice")
        _el(gross, "ram:ChargeAmount", price_text(line.gross_price))
        if line.net_price != line.gross_price:
            discount = _el(gross, "ram:AppliedTradeAllowanceCharge")
            _el(_el(discount, "ram:ChargeIndicator"), "udt:Indicator", "false")
            _el(discount, "ram:ActualAmount", price_text(line.gross_price - line.net_price))
        net = _el(agreement, "ram:NetPriceProductTradePrice")
        _el(net, "ram:ChargeAmount", price_text(line.net_price))
        delivery = _el(item, "ram:SpecifiedLineTradeDelivery")
        _el(delivery, "ram:BilledQuantity", str(line.quantity), unitCode=UNIT_ONE)
        settlement = _el(item, "ram:SpecifiedLineTradeSettlement")
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:TypeCode", "VAT")
        _el(tax, "ram:CategoryCode", data.line_category)
        _el(tax, "ram:RateApplicablePercent", price_text(data.line_rate))
        period = _el(settlement, "ram:BillingSpecifiedPeriod")
        _date(period, "ram:StartDateTime", line.start)
        _date(period, "ram:EndDateTime", line.end)
        summation = _el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
        _el(summation, "ram:LineTotalAmount", data.money(line.amount))

    agreement = _el(transaction, "ram:ApplicableHeaderTradeAgreement")
    _el(agreement, "ram:BuyerReference", data.buyer_reference)
    _party(agreement, "ram:SellerTradeParty", data.seller)
    _party(agreement, "ram:BuyerTradeParty", data.buyer)
    _el(transaction, "ram:ApplicableHeaderTradeDelivery")

    settlement = _el(transaction, "ram:ApplicableHeaderTradeSettlement")
    if not data.is_credit_note:  # nothing is paid against a credit note
        _el(settlement, "ram:PaymentReference", data.payment_reference or data.number)
    _el(settlement, "ram:InvoiceCurrencyCode", data.currency)
    if data.payment_means:
        means = _el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        _el(means, "ram:TypeCode", data.payment_means)
        if data.payment_text:
            _el(means, "ram:Information", data.payment_text)
        if data.iban:
            _el(_el(means, "ram:PayeePartyCreditorFinancialAccount"), "ram:IBANID", data.iban)
    for breakdown in data.taxes:
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:CalculatedAmount", data.money(breakdown.amount))
        _el(tax, "ram:TypeCode", "VAT")
        if breakdown.exemption_reason:
            _el(tax, "ram:ExemptionReason", breakdown.exemption_reason)
        _el(tax, "ram:BasisAmount", data.money(breakdown.base))
        _el(tax, "ram:CategoryCode", breakdown.category)
        if breakdown.exemption_code:
            _el(tax, "ram:ExemptionReasonCode", breakdown.exemption_code)
        _el(tax, "ram:RateApplicablePercent", price_text(breakdown.rate))
    period = _el(settlement, "ram:BillingSpecifiedPeriod")
    _date(period, "ram:StartDateTime", data.period_start)
    _date(period, "ram:EndDateTime", data.period_end)
    if data.due_date:
        terms = _el(settlement, "ram:SpecifiedTradePaymentTerms")
        _el(terms, "ram:Description", data.payment_terms)
        _date(terms, "ram:DueDateDateTime", data.due_date)
    totals = _el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _el(totals, "ram:LineTotalAmount", data.money(data.subtotal))
    _el(totals, "ram:TaxBasisTotalAmount", data.money(data.subtotal))
    _el(totals, "ram:TaxTotalAmount", data.money(data.tax_total), currencyID=data.currency)
    _el(totals, "ram:GrandTotalAmount", data.money(data.total))
    if data.prepaid:
        _el(totals, "ram:TotalPrepaidAmount", data.money(data.prepaid))
    _el(totals, "ram:DuePayableAmount", data.money(data.due))
    if data.preceding:
        number, issued = data.preceding
        reference = _el(settlement, "ram:InvoiceReferencedDocument")
        _el(reference, "ram:IssuerAssignedID", number)
        formatted = _el(reference, "ram:FormattedIssueDateTime")
        _el(formatted, "qdt:DateTimeString", f"{issued:%Y%m%d}", format="102")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
