"""What both e-invoice syntaxes say about one invoice, as plain values (EN 16931's model).

Each line is billed in tokens: quantity = tokens, gross price = the token price, net price =
the token price × the customer's discount multipliers, so quantity × net price rounded
half-up to the currency's decimals is the line amount exactly as `usage.rules` computed it.

The free texts (notes, line names, payment terms, exemption reasons) are in the customer's
language (Customer.language); codes, amounts and dates in the XML's own fields stay as the
syntaxes define them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from stdnum import iban as iban_number

from bridge.money import localize_plain, round_money
from usage import legal
from usage.einvoice.xmltools import COMMERCIAL_INVOICE, CREDIT_NOTE
from usage.legal import long_date
from usage.models import CreditNote, Invoice, InvoiceStatus
from usage.rules import PricingSnapshot, Rule

# UNTDID 5305 tax categories and the CEF VATEX exemption code for reverse charge.
STANDARD, EXEMPT, REVERSE_CHARGE = "S", "E", "AE"
VATEX_REVERSE_CHARGE = "VATEX-EU-AE"
# UNCL 4461 payment means: SEPA credit transfer, credit transfer, not defined.
SEPA_CREDIT_TRANSFER, CREDIT_TRANSFER, NOT_DEFINED = "58", "30", "1"
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_ITEM_NAMES = {"server": gettext_lazy("server"), "additional_ip": gettext_lazy("IP address")}
_EXACT = 400  # Decimal precision at which a product of stored values is exact


class EInvoiceError(ValueError):
    """The invoice cannot be written as an e-invoice; the message says what to fix."""


class NotIssued(EInvoiceError):
    """Only an issued (or paid, or void) invoice has a number to put in an e-invoice."""


@dataclass(frozen=True)
class Party:
    name: str
    address_lines: tuple[str, ...]
    country: str  # ISO 3166-1 alpha-2; "" when unknown
    vat_id: str
    registration: str
    email: str


@dataclass(frozen=True)
class Line:
    id: str
    name: str
    description: str
    quantity: int  # tokens
    gross_price: Decimal  # per token, before discounts
    net_price: Decimal  # per token, after discounts (exact, unrounded)
    amount: Decimal  # the line's net amount, rounded as the invoice rounded it
    start: date
    end: date  # inclusive, as EN 16931 periods are


@dataclass(frozen=True)
class TaxBreakdown:
    category: str
    rate: Decimal
    base: Decimal
    amount: Decimal
    label: str
    exemption_code: str = ""
    exemption_reason: str = ""


@dataclass(frozen=True)
class EInvoice:
    number: str
    issue_date: date
    due_date: date | None
    currency: str
    decimals: int
    period_start: date
    period_end: date  # inclusive
    seller: Party
    buyer: Party
    buyer_reference: str
    lines: tuple[Line, ...]
    # EN 16931 gives a line one tax category and rate: the first of the invoice's taxes.
    line_category: str
    line_rate: Decimal
    taxes: tuple[TaxBreakdown, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    # BT-113: what payments and credit had put on the invoice when the document was made;
    # the PDF beside the XML prints the same allocations and the same amount due.
    prepaid: Decimal
    notes: tuple[str, ...]
    payment_means: str
    iban: str
    payment_text: str
    payment_terms: str
    language: str  # of the free texts: the customer's (an ISO 639-1 code, "en")
    # BT-83, what a transfer quotes: the invoice's ISO 11649 RF reference.
    payment_reference: str
    type_code: str = COMMERCIAL_INVOICE  # BT-3: 380 an invoice, 381 a credit note
    # BT-25 and BT-26: a credit note names the invoice it credits and that invoice's date.
    preceding: tuple[str, date] | None = None

    @property
    def is_credit_note(self) -> bool:
        return self.type_code == CREDIT_NOTE

    @property
    def due(self) -> Decimal:
        """BT-115, the amount due for payment: the total less what was paid (BR-CO-16)."""
        return self.total - self.prepaid

    def money(self, amount: Decimal) -> str:
        """An amount as the invoice rounded it: half-up to the currency's decimals."""
        return f"{round_money(amount, self.decimals):f}"


@dataclass(frozen=True)
class Legal:
    seller: Party
    buyer: Party
    issue_date: date | None
    due_date: date | None
    payment_text: str
    exemption_reason: str


def legal_of(invoice: Invoice) -> Legal:
    """Seller, buyer, dates, how to pay, why no tax: the one place that reads the invoice's
    legal details, as usage.legal keeps them (frozen on issue in `Invoice.legal`)."""
    details = legal.details_of(invoice)
    sold_by, sold_to = details.seller, details.buyer
    seller = Party(
        name=sold_by.name,
        address_lines=_lines(sold_by.address),
        country=_country_of_vat_id(sold_by.vat_id),
        vat_id=sold_by.vat_id,
        registration=sold_by.registration,
        email=sold_by.support_email,
    )
    buyer = Party(
        name=sold_to.company_name or sold_to.name or sold_to.email,
        address_lines=_lines(sold_to.address),
        country=sold_to.country or _country_of_vat_id(sold_to.vat_id),
        vat_id=sold_to.vat_id,
        registration="",
        email=sold_to.email,
    )
    return Legal(
        seller,
        buyer,
        details.issue_date,
        details.due_date,
        payment_text=sold_by.payment_instructions,
        exemption_reason=sold_to.tax_exemption_reason,
    )


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _country_of_vat_id(vat_id: str) -> str:
    """An EU VAT id starts with its country's code (Greece writes EL)."""
    prefix = vat_id.strip()[:2].upper()
    if len(prefix) == 2 and prefix.isalpha():
        return "GR" if prefix == "EL" else prefix
    return ""


def _iban_in(text: str) -> str:
    for match in _IBAN.finditer(text.upper()):
        candidate = match.group().replace(" ", "")
        if iban_number.is_valid(candidate):
            return candidate
    return ""


def _last_day(instant: datetime) -> date:
    """The last day of a half-open period ending at `instant`, in the billing time zone."""
    zone = ZoneInfo(settings.BILLING_TIMEZONE)
    return (instant - timedelta(microseconds=1)).astimezone(zone).date()


def _first_day(instant: datetime) -> date:
    return instant.astimezone(ZoneInfo(settings.BILLING_TIMEZONE)).date()


def einvoice_of(invoice: Invoice) -> EInvoice:
    """The issued invoice's e-invoice data, its texts in the customer's language; raises
    NotIssued for a draft."""
    with translation.override(invoice.customer.language):
        return _einvoice_of(invoice)


def _einvoice_of(invoice: Invoice) -> EInvoice:
    from payments.selectors import paid_of  # payments builds on usage

    if invoice.status == InvoiceStatus.DRAFT or not invoice.number:
        raise NotIssued("only an issued invoice has an e-invoice: issue the draft first")
    pricing = PricingSnapshot.from_json(invoice.snapshot)
    legal = legal_of(invoice)
    seller, buyer, due = legal.seller, legal.buyer, legal.due_date
    payment_text, exemption_reason = legal.payment_text, legal.exemption_reason
    # EN 16931 requires both countries (BT-40, BT-55).
    if not seller.country:
        raise EInvoiceError(
            "the seller's country is unknown: set the seller VAT id in the billing settings"
        )
    if not buyer.country:
        raise EInvoiceError(f"customer {invoice.customer_id} has no country: set it first")
    assert invoice.issued_at is not None  # an issued invoice has an issue time (a constraint)
    issue = legal.issue_date or _first_day(invoice.issued_at)
    gross = pricing.effective_token_price
    with localcontext() as ctx:
        ctx.prec = _EXACT
        net = gross
        for _name, multiplier in pricing.discounts:
            net *= multiplier
    lines = tuple(
        Line(
            id=str(line.position),
            name=f"{line.server_name} ({_ITEM_NAMES.get(line.item, line.item)})",
            description=_("%(plan)s: %(hours)s h, %(rule)s")
            % {"plan": line.plan_name, "hours": line.hours, "rule": Rule.label_of(line.rule)},
            quantity=line.tokens,
            gross_price=gross,
            net_price=net.normalize() if net else Decimal(0),
            amount=round_money(line.amount, pricing.decimals),
            start=_first_day(line.started_at),
            end=_last_day(min(line.ended_at or invoice.period_end, invoice.period_end)),
        )
        for line in invoice.lines.order_by("position")
    )
    subtotal = round_money(invoice.subtotal, pricing.decimals)
    taxes: tuple[TaxBreakdown, ...]
    if invoice.taxes:
        taxes = tuple(
            TaxBreakdown(
                category=STANDARD,
                rate=Decimal(t["rate"]),
                base=Decimal(t["base"]),
                amount=Decimal(t["amount"]),
                label=t["label"],
            )
            for t in invoice.taxes
        )
    else:
        taxes = (_no_tax(subtotal, buyer, exemption_reason, pricing.exempt),)
    notes = [
        _("Discount %(name)s: × %(multiplier)s") % {"name": name, "multiplier": localize_plain(m)}
        for name, m in pricing.discounts
    ]
    if len(taxes) > 1:
        each = ", ".join(
            _("%(label)s %(rate)s %% on %(base)s")
            % {"label": t.label, "rate": localize_plain(t.rate), "base": localize_plain(t.base)}
            for t in taxes
        )
        notes.append(
            (_("Taxes: %(taxes)s (compound)") if pricing.compound else _("Taxes: %(taxes)s"))
            % {"taxes": each}
        )
    iban = _iban_in(payment_text)
    means = SEPA_CREDIT_TRANSFER if iban else CREDIT_TRANSFER if payment_text else NOT_DEFINED
    return EInvoice(
        number=invoice.display_number,
        issue_date=issue,
        due_date=due,
        currency=pricing.currency,
        decimals=pricing.decimals,
        period_start=_first_day(invoice.period_start),
        period_end=_last_day(invoice.period_end),
        seller=seller,
        buyer=buyer,
        buyer_reference=str(invoice.customer_id),
        lines=lines,
        line_category=taxes[0].category,
        line_rate=taxes[0].rate,
        taxes=taxes,
        subtotal=subtotal,
        tax_total=round_money(invoice.tax_total, pricing.decimals),
        total=round_money(invoice.total, pricing.decimals),
        prepaid=round_money(paid_of(invoice), pricing.decimals),
        notes=tuple(notes),
        payment_means=means,
        iban=iban,
        payment_text=payment_text,
        payment_terms=_("Due %(date)s") % {"date": long_date(due)} if due else "",
        language=translation.get_language() or settings.LANGUAGE_CODE,
        payment_reference=invoice.payment_reference,
    )


def credit_note_einvoice_of(note: CreditNote) -> EInvoice:
    """The credit note's e-invoice data (type 381), in the customer's language: the
    credited invoice's lines, taxes and totals as positive amounts (EN 16931 writes a
    credit note's amounts positive; the type says they are credited), its own number and
    issue date, the invoice it credits (BT-25, BT-26) and its reason as the first note.
    Nothing is owed on it: no due date, no amount paid, no payment means."""
    with translation.override(note.invoice.customer.language):
        credited = _einvoice_of(note.invoice)
        if note.total != -note.invoice.total:  # a full reversal, as invoice_states writes it
            raise EInvoiceError(f"{note.display_number} does not reverse its invoice in full")
        issued = legal.LegalDetails.from_json(note.legal).issue_date
        return replace(
            credited,
            number=note.display_number,
            issue_date=issued or _first_day(note.issued_at),
            due_date=None,
            payment_terms="",
            payment_means="",
            iban="",
            payment_text="",
            payment_reference="",
            prepaid=Decimal(0),
            notes=(note.reason, *credited.notes),
            type_code=CREDIT_NOTE,
            preceding=(credited.number, credited.issue_date),
        )


def _no_tax(subtotal: Decimal, buyer: Party, reason: str, billing_exempt: bool) -> TaxBreakdown:
    """One zero-rated breakdown: reverse charge where the buyer has a VAT id and a reason,
    otherwise exempt, with the customer's reason (or the billing exemption) as its text."""
    if buyer.vat_id and reason and not billing_exempt:
        return TaxBreakdown(
            REVERSE_CHARGE,
            Decimal(0),
            subtotal,
            Decimal(0),
            _("Reverse charge"),
            VATEX_REVERSE_CHARGE,
            reason,
        )
    text = reason or (_("Not charged: billing-exempt customer") if billing_exempt else _("No tax"))
    return TaxBreakdown(EXEMPT, Decimal(0), subtotal, Decimal(0), _("Exempt"), "", text)
