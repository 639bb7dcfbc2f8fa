"""E-invoices (issue 12 §2): Factur-X (CII in a PDF/A-3) and UBL 2.1 (Peppol BIS 3.0), valid
against their schemas, with every amount equal to the invoice's."""

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from facturx import get_xml_from_pdf
from lxml import etree
from pypdf import PdfReader

from bridge.money import format_money
from payments.services import record_payment
from pricing.models import Currency
from pricing.tests.api_helpers import body, make_user, staff_client, token_client
from usage import invoice_states
from usage.einvoice import cii, data, documents, schemas, ubl
from usage.einvoice.data import Party
from usage.emails import invoice_message
from usage.models import BillingSettings, CreditNote, Invoice, InvoiceStatus
from usage.rules import PricingSnapshot
from usage.tests import schematron
from usage.tests.test_invoice_pdf import ISSUED_AT, issue, make_invoice, text_of
from users.models import Customer

pytestmark = pytest.mark.django_db
CII_NS = {"ram": cii.RAM, "rsm": cii.RSM, "udt": cii.UDT}
CII_NS_QDT = {"ram": cii.RAM, "qdt": cii.QDT}
UBL_NS = {"cac": ubl.CAC, "cbc": ubl.CBC, "inv": ubl.INVOICE}
SELLER = Party(
    name="Example Hosting GmbH",
    address_lines=("Hauptstraße 1", "10115 Berlin", "Germany"),
    country="DE",
    vat_id="DE123456789",
    registration="HRB 12345, Amtsgericht Berlin",
    email="billing@example.test",
)
PAY = "Bank transfer to IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX"


def _pricing(currency: Currency, **changes: Any) -> PricingSnapshot:
    values: dict[str, Any] = {
        "currency": currency.code,
        "token_price": Decimal("0.0091"),
        "decimals": 2,
        "display_prefix": "€",
        "display_suffix": " EUR",
        "thousands_separator": ".",
        "decimals_separator": ",",
        "discounts": (("Loyalty", Decimal("0.95")), ("Partner", Decimal("0.9"))),
        "taxes": (("VAT", Decimal("19")), ("Local levy", Decimal("2.5"))),
        "compound": False,
        "exempt": False,
    }
    return PricingSnapshot(**(values | changes))


def _issued(customer: Customer, pricing: PricingSnapshot) -> Invoice:
    """An issued October invoice of twelve lines (a cap, an IP address), priced by the rules."""
    return issue(make_invoice(customer, pricing, lines=12))


@pytest.fixture
def seller(db: None) -> BillingSettings:
    row = BillingSettings.load()
    row.seller_name = SELLER.name
    row.seller_address = "\n".join(SELLER.address_lines)
    row.seller_vat_id = SELLER.vat_id
    row.seller_registration = SELLER.registration
    row.support_email = SELLER.email
    row.payment_instructions = PAY
    row.payment_terms_days = 14
    row.save()
    return row


@pytest.fixture
def customer(eur: Currency, seller: BillingSettings) -> Customer:
    return Customer.objects.create(
        id=7,
        email="client@example.test",
        currency=eur,
        country="FR",
        company_name="Client SARL",
        billing_address="12 rue de la Paix\n75002 Paris",
    )


def _amounts(root: etree._Element, path: str, ns: dict[str, str]) -> list[Decimal]:
    return [Decimal(node.text) for node in root.xpath(path, namespaces=ns)]


def test_cii_and_ubl_state_the_invoice_with_discounts_and_two_tax_rates(
    customer: Customer, eur: Currency
) -> None:
    invoice = _issued(customer, _pricing(eur))
    lines = list(invoice.lines.order_by("position"))
    line_amounts = [line.amount.quantize(Decimal("0.01")) for line in lines]
    taxes = [(Decimal(t["base"]), Decimal(t["amount"]), Decimal(t["rate"])) for t in invoice.taxes]
    assert len(taxes) == 2
    assert all(amount > 0 for _b, amount, _r in taxes)
    einvoice = data.einvoice_of(invoice)

    cii_xml = cii.cii_xml(einvoice)
    schemas.check(cii_xml, schemas.cii_schema())
    root = etree.fromstring(cii_xml)
    assert (
        _amounts(
            root,
            "//ram:LineTotalAmount[parent::ram:SpecifiedTradeSettlementLineMonetarySummation]",
            CII_NS,
        )
        == line_amounts
    )
    # quantity × net price, rounded half-up, is each line's amount
    quantities = _amounts(root, "//ram:BilledQuantity", CII_NS)
    net_prices = _amounts(root, "//ram:NetPriceProductTradePrice/ram:ChargeAmount", CII_NS)
    assert quantities == [Decimal(line.tokens) for line in lines]
    assert net_prices == [Decimal("0.0091") * Decimal("0.95") * Decimal("0.9")] * len(lines)
    assert [
        (q * p).quantize(Decimal("0.01")) for q, p in zip(quantities, net_prices, strict=True)
    ] == line_amounts
    header = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax"
    assert list(zip(
        _amounts(root, f"{header}/ram:BasisAmount", CII_NS),
        _amounts(root, f"{header}/ram:CalculatedAmount", CII_NS),
        _amounts(root, f"{header}/ram:RateApplicablePercent", CII_NS),
        strict=True,
    )) == taxes  # fmt: skip
    summary = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    assert _amounts(root, f"{summary}/ram:LineTotalAmount", CII_NS) == [invoice.subtotal]
    assert _amounts(root, f"{summary}/ram:TaxBasisTotalAmount", CII_NS) == [invoice.subtotal]
    assert _amounts(root, f"{summary}/ram:TaxTotalAmount", CII_NS) == [invoice.tax_total]
    assert _amounts(root, f"{summary}/ram:GrandTotalAmount", CII_NS) == [invoice.total]
    assert _amounts(root, f"{summary}/ram:DuePayableAmount", CII_NS) == [invoice.total]
    assert root.xpath("string(//rsm:ExchangedDocument/ram:ID)", namespaces=CII_NS) == "INV-000001"
    assert root.xpath("string(//ram:IBANID)", namespaces=CII_NS) == "DE89370400440532013000"
    # BT-83: a transfer quotes the ISO 11649 reference derived from the number.
    reference = "string(//ram:ApplicableHeaderTradeSettlement/ram:PaymentReference)"
    assert root.xpath(reference, namespaces=CII_NS) == "RF74000000001"
    assert (
        root.xpath("string(//ram:DueDateDateTime/udt:DateTimeString)", namespaces=CII_NS)
        == "20261116"
    )
    assert sum(line_amounts) == invoice.subtotal
    assert invoice.subtotal + sum(t[1] for t in taxes) == invoice.total

    ubl_xml = ubl.ubl_xml(einvoice)
    schemas.check(ubl_xml, schemas.ubl_schema())
    doc = etree.fromstring(ubl_xml)
    assert doc.xpath("string(//cac:PaymentMeans/cbc:PaymentID)", namespaces=UBL_NS) == (
        "RF74000000001"
    )
    assert _amounts(doc, "//cac:InvoiceLine/cbc:LineExtensionAmount", UBL_NS) == line_amounts
    assert _amounts(doc, "//cac:InvoiceLine/cbc:InvoicedQuantity", UBL_NS) == quantities
    assert _amounts(doc, "//cac:InvoiceLine/cac:Price/cbc:PriceAmount", UBL_NS) == net_prices
    assert list(zip(
        _amounts(doc, "//cac:TaxSubtotal/cbc:TaxableAmount", UBL_NS),
        _amounts(doc, "//cac:TaxSubtotal/cbc:TaxAmount", UBL_NS),
        _amounts(doc, "//cac:TaxSubtotal/cac:TaxCategory/cbc:Percent", UBL_NS),
        strict=True,
    )) == taxes  # fmt: skip
    assert _amounts(doc, "/inv:Invoice/cac:TaxTotal/cbc:TaxAmount", UBL_NS) == [invoice.tax_total]
    money = "//cac:LegalMonetaryTotal"
    assert _amounts(doc, f"{money}/cbc:LineExtensionAmount", UBL_NS) == [invoice.subtotal]
    assert _amounts(doc, f"{money}/cbc:TaxExclusiveAmount", UBL_NS) == [invoice.subtotal]
    assert _amounts(doc, f"{money}/cbc:TaxInclusiveAmount", UBL_NS) == [invoice.total]
    assert _amounts(doc, f"{money}/cbc:PayableAmount", UBL_NS) == [invoice.total]
    assert (
        doc.xpath("string(/inv:Invoice/cbc:CustomizationID)", namespaces=UBL_NS)
        == ubl.CUSTOMIZATION
    )
    assert {n.get("currencyID") for n in doc.xpath("//*[@currencyID]")} == {"EUR"}


def test_a_part_paid_invoice_states_what_was_paid_and_what_is_due_as_its_pdf_does(
    customer: Customer, eur: Currency
) -> None:
    """BT-113 and BT-115 (BR-CO-16: due = total - paid): the XML inside a Factur-X PDF says
    the amount due that the PDF itself prints below the total."""
    invoice = _issued(customer, _pricing(eur))
    unpaid_cii = etree.fromstring(cii.cii_xml(data.einvoice_of(invoice)))
    assert unpaid_cii.xpath("//ram:TotalPrepaidAmount", namespaces=CII_NS) == []
    paid = Decimal("10.00")
    record_payment(
        customer_id=customer.pk,
        amount=paid,
        currency="EUR",
        method="bank_transfer",
        received_at=ISSUED_AT + timedelta(days=2),
        reference="T-1",
    )
    due = invoice.total - paid
    assert due > 0

    document = documents.facturx_document(invoice)
    root = etree.fromstring(get_xml_from_pdf(document, check_xsd=False)[1])
    summary = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    assert _amounts(root, f"{summary}/ram:GrandTotalAmount", CII_NS) == [invoice.total]
    assert _amounts(root, f"{summary}/ram:TotalPrepaidAmount", CII_NS) == [paid]
    assert _amounts(root, f"{summary}/ram:DuePayableAmount", CII_NS) == [due]
    printed = format_money(due, PricingSnapshot.from_json(invoice.snapshot)).replace("\xa0", " ")
    assert f"Amount due {printed}\n" in text_of(document)

    doc = etree.fromstring(documents.ubl_document(invoice))  # checked against the XSD
    money = "//cac:LegalMonetaryTotal"
    assert _amounts(doc, f"{money}/cbc:TaxInclusiveAmount", UBL_NS) == [invoice.total]
    assert _amounts(doc, f"{money}/cbc:PrepaidAmount", UBL_NS) == [paid]
    assert _amounts(doc, f"{money}/cbc:PayableAmount", UBL_NS) == [due]

    record_payment(
        customer_id=customer.pk,
        amount=due,
        currency="EUR",
        method="bank_transfer",
        received_at=ISSUED_AT + timedelta(days=3),
        reference="T-2",
    )
    settled = data.einvoice_of(Invoice.objects.get(pk=invoice.pk))
    assert (settled.prepaid, settled.due) == (invoice.total, Decimal("0.00"))


def test_reverse_charge_and_billing_exempt_carry_the_exemption(
    customer: Customer, eur: Currency
) -> None:
    reason = "Reverse charge: Art. 196 Directive 2006/112/EC"
    Customer.objects.filter(pk=customer.pk).update(
        vat_id="FR12345678901", tax_exemption_reason=reason
    )
    customer.refresh_from_db()
    reverse = _issued(customer, _pricing(eur, taxes=(), discounts=()))
    assert reverse.tax_total == 0
    assert reverse.total > 0
    einvoice = data.einvoice_of(reverse)
    cii_root = etree.fromstring(cii.cii_xml(einvoice))
    schemas.check(etree.tostring(cii_root), schemas.cii_schema())
    tax = cii_root.xpath(
        "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", namespaces=CII_NS
    )
    assert len(tax) == 1
    assert tax[0].findtext(f"{{{cii.RAM}}}CategoryCode") == "AE"
    assert tax[0].findtext(f"{{{cii.RAM}}}ExemptionReasonCode") == "VATEX-EU-AE"
    assert tax[0].findtext(f"{{{cii.RAM}}}ExemptionReason") == reason
    assert Decimal(tax[0].findtext(f"{{{cii.RAM}}}BasisAmount")) == reverse.subtotal
    assert Decimal(tax[0].findtext(f"{{{cii.RAM}}}CalculatedAmount")) == 0
    assert {
        n.text
        for n in cii_root.xpath(
            "//ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode",
            namespaces=CII_NS,
        )
    } == {"AE"}
    ubl_root = etree.fromstring(ubl.ubl_xml(einvoice))
    schemas.check(etree.tostring(ubl_root), schemas.ubl_schema())
    category = ubl_root.xpath("//cac:TaxSubtotal/cac:TaxCategory", namespaces=UBL_NS)[0]
    assert category.findtext(f"{{{ubl.CBC}}}ID") == "AE"
    assert category.findtext(f"{{{ubl.CBC}}}TaxExemptionReasonCode") == "VATEX-EU-AE"
    assert category.findtext(f"{{{ubl.CBC}}}TaxExemptionReason") == reason
    payable = ubl_root.xpath("//cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=UBL_NS)
    assert Decimal(payable[0].text) == reverse.total

    Invoice.objects.all().delete()
    Customer.objects.filter(pk=customer.pk).update(vat_id="", tax_exemption_reason="")
    customer.refresh_from_db()
    exempt = _issued(customer, _pricing(eur, taxes=(), exempt=True))
    assert exempt.total == 0
    einvoice = data.einvoice_of(exempt)
    ubl_root = etree.fromstring(ubl.ubl_xml(einvoice))
    schemas.check(etree.tostring(ubl_root), schemas.ubl_schema())
    category = ubl_root.xpath("//cac:TaxSubtotal/cac:TaxCategory", namespaces=UBL_NS)[0]
    assert category.findtext(f"{{{ubl.CBC}}}ID") == "E"
    assert (
        category.findtext(f"{{{ubl.CBC}}}TaxExemptionReason")
        == "Not charged: billing-exempt customer"
    )
    assert (
        _amounts(ubl_root, "//cac:InvoiceLine/cbc:LineExtensionAmount", UBL_NS)
        == [Decimal("0.00")] * 12
    )
    cii_xml = cii.cii_xml(einvoice)
    schemas.check(cii_xml, schemas.cii_schema())
    assert b"<ram:CategoryCode>E</ram:CategoryCode>" in cii_xml


def test_the_schemas_reject_a_broken_invoice() -> None:
    """The check is real: an invoice without its seller fails the XSD."""
    broken = b"""<?xml version="1.0"?>
      <Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
      xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
      <cbc:ID>1</cbc:ID></Invoice>"""
    with pytest.raises(schemas.SchemaError, match="IssueDate"):
        schemas.check(broken, schemas.ubl_schema())


def test_the_facturx_pdf_is_pdfa3_with_the_cii_inside(customer: Customer, eur: Currency) -> None:
    invoice = _issued(customer, _pricing(eur))
    pdf = documents.facturx_document(invoice)
    name, xml = get_xml_from_pdf(pdf, check_xsd=True)
    assert name == "factur-x.xml"
    assert xml == cii.cii_xml(data.einvoice_of(invoice))
    reader = PdfReader(BytesIO(pdf))
    metadata = reader.xmp_metadata
    assert metadata is not None
    xmp = metadata.rdf_root.toxml()
    assert "<pdfaid:part>3</pdfaid:part>" in xmp
    assert "EN 16931" in xmp
    assert "Invoice INV-000001" in reader.pages[0].extract_text()


def test_downloads_in_the_api_admin_and_portal(
    customer: Customer, eur: Currency, admin_client: Client
) -> None:
    invoice = _issued(customer, _pricing(eur))
    api = staff_client(Invoice, actions=("view",))
    ubl_response = api.get(f"/api/v1/invoices/{invoice.pk}/ubl/")
    assert ubl_response.status_code == 200, ubl_response.content
    assert ubl_response["Content-Type"] == "application/xml"
    assert 'filename="invoice-000001-ubl.xml"' in ubl_response["Content-Disposition"]
    schemas.check(ubl_response.content, schemas.ubl_schema())
    facturx = api.get(f"/api/v1/invoices/{invoice.pk}/facturx/")
    assert facturx.status_code == 200
    assert get_xml_from_pdf(facturx.content, check_xsd=True)[0] == "factur-x.xml"
    assert (
        staff_client(Customer, actions=("view",))
        .get(f"/api/v1/invoices/{invoice.pk}/ubl/")
        .status_code
        == 403
    )

    # The default PDF is plain until the setting is on, then it is the Factur-X one.
    assert b"factur-x.xml" not in api.get(f"/api/v1/invoices/{invoice.pk}/pdf/").content
    BillingSettings.objects.update_or_create(pk=1, defaults={"einvoice_pdf": True})
    _name, attached, _type = invoice_message(invoice).attachments[0]
    assert get_xml_from_pdf(attached)[0] == "factur-x.xml"  # the e-mail's PDF too
    assert (
        get_xml_from_pdf(api.get(f"/api/v1/invoices/{invoice.pk}/pdf/").content)[0]
        == "factur-x.xml"
    )

    page = admin_client.get(f"/admin/usage/invoice/{invoice.pk}/change/").content.decode()
    assert f"/admin/usage/invoice/{invoice.pk}/ubl/" in page
    assert f"/admin/usage/invoice/{invoice.pk}/facturx/" in page
    assert (
        admin_client.get(f"/admin/usage/invoice/{invoice.pk}/ubl/")["Content-Type"]
        == "application/xml"
    )
    assert admin_client.get(f"/admin/usage/invoice/{invoice.pk}/facturx/").content.startswith(
        b"%PDF"
    )

    user = User.objects.create_user(username="customer:7", password="x")
    Customer.objects.filter(pk=customer.pk).update(user=user)
    browser = Client()
    browser.force_login(user)
    portal = browser.get(f"/account/invoices/{invoice.pk}/facturx/")
    assert portal.status_code == 200
    assert get_xml_from_pdf(portal.content)[0] == "factur-x.xml"


def test_a_draft_or_an_incomplete_invoice_has_no_einvoice(
    customer: Customer, eur: Currency
) -> None:
    invoice = _issued(customer, _pricing(eur))
    Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.DRAFT, number=None)
    api = staff_client(Invoice, actions=("view",))
    draft = api.get(f"/api/v1/invoices/{invoice.pk}/ubl/")
    assert draft.status_code == 409
    assert set(body(draft)) == {"message", "errors"}
    assert "issue the draft first" in body(draft)["message"]

    Customer.objects.filter(pk=customer.pk).update(country="")
    invoice = invoice_states.issue_invoice(invoice_id=invoice.pk)
    missing = api.get(f"/api/v1/invoices/{invoice.pk}/facturx/")
    assert missing.status_code == 409
    assert "has no country" in body(missing)["message"]
    # The default PDF stays a plain PDF rather than failing.
    BillingSettings.objects.update_or_create(pk=1, defaults={"einvoice_pdf": True})
    plain = api.get(f"/api/v1/invoices/{invoice.pk}/pdf/")
    assert plain.status_code == 200
    assert b"factur-x.xml" not in plain.content


def test_a_credit_note_is_an_einvoice_of_type_381_naming_the_invoice_it_credits(
    customer: Customer, eur: Currency, tmp_path: Path
) -> None:
    """BT-3 381, BT-25/26 the credited invoice; amounts positive as EN 16931 writes a credit
    note's, equal to the invoice's; nothing to pay, so no payment means or reference."""
    invoice = _issued(customer, _pricing(eur))
    voided = invoice_states.void_invoice(
        invoice_id=invoice.pk, reason="Billed twice", now=ISSUED_AT + timedelta(days=3)
    )
    note = voided.credit_note
    assert note.total == -invoice.total

    pdf = documents.credit_note_facturx_document(note)
    (tmp_path / "credit-note-facturx.pdf").write_bytes(pdf)  # to look at: pytest --basetemp
    name, xml = get_xml_from_pdf(pdf, check_xsd=True)
    assert name == "factur-x.xml"
    root = etree.fromstring(xml)
    assert root.xpath("string(//rsm:ExchangedDocument/ram:ID)", namespaces=CII_NS) == "CN-000001"
    assert root.xpath("string(//rsm:ExchangedDocument/ram:TypeCode)", namespaces=CII_NS) == "381"
    assert root.xpath("string(//ram:IssueDateTime/udt:DateTimeString)", namespaces=CII_NS) == (
        "20261105"
    )
    assert root.xpath("string(//ram:IncludedNote[1]/ram:Content)", namespaces=CII_NS) == (
        "Billed twice"
    )
    referenced = "//ram:ApplicableHeaderTradeSettlement/ram:InvoiceReferencedDocument"
    assert root.xpath(f"string({referenced}/ram:IssuerAssignedID)", namespaces=CII_NS) == (
        "INV-000001"
    )
    assert root.xpath(f"string({referenced}//qdt:DateTimeString)", namespaces=CII_NS_QDT) == (
        "20261102"
    )
    summary = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    assert _amounts(root, f"{summary}/ram:GrandTotalAmount", CII_NS) == [invoice.total]
    assert _amounts(root, f"{summary}/ram:DuePayableAmount", CII_NS) == [invoice.total]
    assert root.xpath("//ram:SpecifiedTradeSettlementPaymentMeans", namespaces=CII_NS) == []
    assert root.xpath("//ram:PaymentReference", namespaces=CII_NS) == []
    assert root.xpath("//ram:DueDateDateTime", namespaces=CII_NS) == []
    assert "Credit note CN-000001" in PdfReader(BytesIO(pdf)).pages[0].extract_text()

    doc = etree.fromstring(documents.credit_note_ubl_document(note))  # checked by its XSD
    ns = {"cac": ubl.CAC, "cbc": ubl.CBC, "cn": ubl.CREDIT_NOTE}
    assert doc.tag == f"{{{ubl.CREDIT_NOTE}}}CreditNote"
    assert doc.xpath("string(/cn:CreditNote/cbc:CreditNoteTypeCode)", namespaces=ns) == "381"
    reference = "/cn:CreditNote/cac:BillingReference/cac:InvoiceDocumentReference"
    assert doc.xpath(f"string({reference}/cbc:ID)", namespaces=ns) == "INV-000001"
    assert doc.xpath(f"string({reference}/cbc:IssueDate)", namespaces=ns) == "2026-11-02"
    lines = invoice.lines.order_by("position")
    assert _amounts(doc, "//cac:CreditNoteLine/cbc:CreditedQuantity", ns) == [
        Decimal(line.tokens) for line in lines
    ]
    assert _amounts(doc, "//cac:CreditNoteLine/cbc:LineExtensionAmount", ns) == [
        line.amount.quantize(Decimal("0.01")) for line in lines
    ]
    assert _amounts(doc, "//cac:LegalMonetaryTotal/cbc:PayableAmount", ns) == [invoice.total]
    assert doc.xpath("//cac:PaymentMeans", namespaces=ns) == []
    with pytest.raises(schemas.SchemaError):  # the invoice's schema is not a credit note's
        schemas.check(etree.tostring(doc), schemas.ubl_schema())


def test_credit_note_einvoices_in_the_api_and_admin_need_view_creditnote(
    customer: Customer, eur: Currency
) -> None:
    """No permission: 403; view on invoices only: 403; view on credit notes: both documents,
    named after the credit note; the admin page links them. An incomplete one is a 409 (API)
    or a message on its page (admin), never a 500."""
    invoice = _issued(customer, _pricing(eur))
    note = invoice_states.void_invoice(invoice_id=invoice.pk, reason="Duplicate").credit_note
    paths = {
        "ubl": (f"/api/v1/credit-notes/{note.pk}/ubl/", f"/admin/usage/creditnote/{note.pk}/ubl/"),
        "facturx": (
            f"/api/v1/credit-notes/{note.pk}/facturx/",
            f"/admin/usage/creditnote/{note.pk}/facturx/",
        ),
    }
    nobody = make_user("nobody")
    invoices_only = make_user("invoices", models=[Invoice], actions=("view",))
    viewer = make_user("viewer", models=[CreditNote], actions=("view",))
    for user in (nobody, invoices_only):
        browser = Client()
        browser.force_login(user)
        for api_path, admin_path in paths.values():
            assert token_client(user).get(api_path).status_code == 403
            assert browser.get(admin_path).status_code == 403

    api = token_client(viewer)
    browser = Client()
    browser.force_login(viewer)
    ubl_response = api.get(paths["ubl"][0])
    assert ubl_response.status_code == 200
    assert ubl_response["Content-Type"] == "application/xml"
    assert 'filename="credit-note-000001-ubl.xml"' in ubl_response["Content-Disposition"]
    schemas.check(ubl_response.content, schemas.ubl_credit_note_schema())
    facturx = api.get(paths["facturx"][0])
    assert 'filename="credit-note-000001-facturx.pdf"' in facturx["Content-Disposition"]
    assert get_xml_from_pdf(facturx.content, check_xsd=True)[0] == "factur-x.xml"
    page = browser.get(f"/admin/usage/creditnote/{note.pk}/change/").content.decode()
    for _api_path, admin_path in paths.values():
        assert admin_path in page
        assert browser.get(admin_path).status_code == 200

    # The customer downloads their own from the portal; another customer finds nothing.
    portal_path = f"/account/invoices/credit-notes/{note.pk}/facturx/"
    owner = User.objects.create_user(username="customer:7", password="x")
    Customer.objects.filter(pk=customer.pk).update(user=owner)
    other = User.objects.create_user(username="customer:8", password="x")
    Customer.objects.create(id=8, email="other@example.test", currency=eur, user=other)
    portal = Client()
    portal.force_login(owner)
    own = portal.get(portal_path)
    assert own.status_code == 200
    assert 'filename="credit-note-000001-facturx.pdf"' in own["Content-Disposition"]
    portal.force_login(other)
    assert portal.get(portal_path).status_code == 404

    frozen = Invoice.objects.get(pk=invoice.pk).legal
    frozen["customer"]["country"] = ""  # issued before the customer had a country
    Invoice.objects.filter(pk=invoice.pk).update(legal=frozen)
    missing = api.get(paths["facturx"][0])
    assert missing.status_code == 409
    assert "has no country" in body(missing)["message"]
    back = browser.get(paths["ubl"][1], follow=True)
    assert back.redirect_chain[-1][0] == f"/admin/usage/creditnote/{note.pk}/change/"
    assert "No e-invoice" in back.content.decode()
    portal.force_login(owner)
    refused = portal.get(portal_path)
    assert refused.status_code == 409
    assert "This credit note has no e-invoice yet" in refused.content.decode()


def test_the_einvoices_keep_the_en16931_business_rules(customer: Customer, eur: Currency) -> None:
    """Beyond the XSDs: the EN 16931 Schematron (CII and UBL) finds no error in an invoice
    with one VAT rate and two discounts, part paid (BR-CO-16); in its credit note; in a
    reverse-charge invoice; or in a billing-exempt one."""
    vat = _pricing(eur, taxes=(("VAT", Decimal("20")),))
    invoice = _issued(customer, vat)
    record_payment(
        customer_id=customer.pk,
        amount=Decimal("1.00"),
        currency="EUR",
        method="bank_transfer",
        received_at=ISSUED_AT + timedelta(days=1),
        reference="T-1",
    )
    part_paid = data.einvoice_of(invoice)
    assert part_paid.prepaid == Decimal("1.00")
    note = invoice_states.void_invoice(invoice_id=invoice.pk, reason="Billed twice").credit_note
    documents_made = {"part paid": part_paid, "credit note": data.credit_note_einvoice_of(note)}

    def another(pk: int, **details: str) -> Customer:
        fields = {"country": "FR", "company_name": "Client SARL", "billing_address": "Paris"}
        return Customer.objects.create(
            id=pk, email=f"c{pk}@example.test", currency=eur, **(fields | details)
        )

    buyer = another(8, vat_id="FR40303265045", tax_exemption_reason="Autoliquidation (art. 196)")
    reverse = _issued(buyer, _pricing(eur, taxes=()))
    documents_made["reverse charge"] = data.einvoice_of(reverse)
    exempt = _issued(another(9), _pricing(eur, taxes=(), exempt=True))
    documents_made["exempt"] = data.einvoice_of(exempt)

    for name, einvoice in documents_made.items():
        assert schematron.errors(cii.cii_xml(einvoice), schematron.CII) == set(), name
        assert schematron.errors(ubl.ubl_xml(einvoice), schematron.UBL) == set(), name


def test_the_business_rules_are_checked_for_real(customer: Customer, eur: Currency) -> None:
    """The check can fail: two tax rates on the same lines break BR-S-08 (EN 16931 gives a
    line one VAT rate; the README says so), and a total that does not add up breaks
    BR-CO-15."""
    einvoice = data.einvoice_of(_issued(customer, _pricing(eur)))  # VAT 19 % and a levy
    assert "BR-S-08" in schematron.errors(ubl.ubl_xml(einvoice), schematron.UBL)
    wrong = replace(einvoice, total=einvoice.total + Decimal("1.00"))
    assert "BR-CO-15" in schematron.errors(cii.cii_xml(wrong), schematron.CII)
