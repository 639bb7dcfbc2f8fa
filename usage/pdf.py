"""An invoice as PDF (fpdf2, pure Python) with every field DESIGN §6 asks for: tables wrap
long text so columns never overlap and repeat their heading on each page; money is written as
the invoice's own currency snapshot says; without a Unicode font (INVOICE_PDF_FONT or DejaVu
Sans), the core font's Latin-1 is used and other currency signs are spelled out (€ → EUR).
A document is written in its customer's language (Customer.language): labels from the
translation catalogues, dates and numbers as that language writes them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import HttpResponse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from fpdf import FPDF
from fpdf.enums import TableBordersLayout
from fpdf.fonts import FontFace

from bridge.money import (
    format_discount,
    format_money,
    format_percent,
    format_tokens,
    token_price_decimals,
)
from payments import selectors as payment_selectors
from usage.legal import LegalDetails, details_of, long_date, payment_link, status_label
from usage.models import CreditNote, Invoice, InvoiceLine, logo_file
from usage.rules import PricingSnapshot, Rule

logger = logging.getLogger(__name__)

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)
# Non-breaking spaces, as the signs they stand for are part of the amount.
_SPELLED = {
    sign: f"{code}\u00a0"
    for sign, code in {
        "€": "EUR",
        "₹": "INR",
        "₽": "RUB",
        "₩": "KRW",
        "₺": "TRY",
        "₴": "UAH",
    }.items()
}

# The core font has no dashes: a hyphen reads the same in "1 October – 31 October".
_LATIN1_DASHES = str.maketrans({"—": "-", "–": "-"})


def _font_path() -> str | None:
    configured = getattr(settings, "INVOICE_PDF_FONT", "")
    for candidate in (configured, *_FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


# Column widths (mm) of the line table: 190 = A4 less the 10 mm margins.
LINE_WIDTHS = (59, 13, 15, 17, 23, 21, 16, 26)
LINE_HEADINGS = (
    gettext_lazy("Description"),
    gettext_lazy("Hours"),
    gettext_lazy("Tokens per hour"),
    gettext_lazy("Monthly cap (tokens)"),
    gettext_lazy("Unit price (per hour)"),
    gettext_lazy("Rule"),
    gettext_lazy("Tokens"),
    gettext_lazy("Amount"),
)
_FOOTER_LINE = 3.6  # mm per footer text line
# Periods are half-open: the last day of supply is the one holding the last instant before
# the end.
_ONE_MICROSECOND = timedelta(microseconds=1)

Money = Callable[..., str]
Tokens = Callable[[int], str]


def _lines(*parts: str) -> str:
    """Non-empty parts, one per line."""
    return "\n".join(part.strip() for part in parts if part and part.strip())


def _day(value: date | None) -> str:
    return long_date(value) if value else ""


class _Doc(FPDF):
    def __init__(self, *, running_head: str, footer_lines: Sequence[str]) -> None:
        super().__init__(format="A4")
        self.unicode = False
        path = _font_path()
        if path:
            self.add_font("Body", "", path)
            bold = path.replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
            self.add_font("Body", "B", bold if Path(bold).is_file() else path)
            self.family = "Body"
            self.unicode = True
        else:
            self.family = "Helvetica"
        self.running_head = self.text_of(running_head)
        self.footer_lines = [self.text_of(line) for line in footer_lines]
        self.set_margins(10, 10, 10)
        # Room for the footer, so the tables break before they reach it.
        self.set_auto_page_break(True, margin=12 + _FOOTER_LINE * (len(self.footer_lines) + 1))

    def text_of(self, text: str) -> str:
        if self.unicode:
            return text
        for sign, spelled in _SPELLED.items():
            text = text.replace(sign, spelled)
        text = text.translate(_LATIN1_DASHES)
        return text.encode("latin-1", "replace").decode("latin-1")

    def header(self) -> None:
        self.set_font(self.family, "", 8)
        self.set_text_color(90)
        self.cell(0, 5, self.running_head, new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(180)
        self.line(10, self.get_y(), 200, self.get_y())
        self.set_text_color(0)
        self.ln(3)

    def footer(self) -> None:
        top = self.h - 8 - _FOOTER_LINE * (len(self.footer_lines) + 1)
        self.set_y(top)
        self.set_draw_color(180)
        self.line(10, top, 200, top)
        self.set_font(self.family, "", 7)
        self.set_text_color(90)
        self.set_y(top + 1)
        for line in self.footer_lines:
            self.cell(150, _FOOTER_LINE, line, new_x="LMARGIN", new_y="NEXT")
        self.set_xy(160, top + 1)
        # fpdf2 replaces {nb} with the page count when the document is written.
        page = _("Page %(page)s of %(pages)s") % {"page": self.page_no(), "pages": "{nb}"}
        self.cell(40, _FOOTER_LINE, self.text_of(page), align="R")
        self.set_text_color(0)


def invoice_filename(invoice: Invoice) -> str:
    """The PDF's file name, without `.pdf`."""
    if invoice.number:
        return f"invoice-{invoice.number:06d}"
    return f"draft-{invoice.customer_id}-{invoice.period:%Y-%m}"


def credit_note_filename(note: CreditNote) -> str:
    return f"credit-note-{note.number:06d}"


def credit_note_pdf_response(note: CreditNote) -> HttpResponse:
    """The credit note's PDF as a download (admin, staff API, portal)."""
    response = HttpResponse(render_credit_note_pdf(note), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{credit_note_filename(note)}.pdf"'
    return response


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice in its customer's language."""
    with translation.override(invoice.customer.language):
        return _invoice_pdf(invoice)


def _invoice_pdf(invoice: Invoice) -> bytes:
    pricing = PricingSnapshot.from_json(invoice.snapshot)
    legal = details_of(invoice)
    title = (
        _("Invoice %(number)s") % {"number": invoice.display_number}
        if invoice.number
        else _("Draft invoice (not issued)")
    )
    doc, money, tokens = _start(title, legal, pricing)
    _facts(doc, invoice, legal, pricing)
    doc.ln(4)
    _line_table(doc, invoice.lines.all(), pricing, money, tokens)
    doc.ln(3)
    _totals(doc, invoice, pricing, money, tokens)
    due = _paid_so_far(doc, invoice, money)
    _payment(doc, invoice, legal, money, due)
    if invoice.discrepancies:
        doc.ln(2)
        doc.set_font(doc.family, "", 8)
        doc.multi_cell(0, 4, doc.text_of(_("* SolusIO reported a different charge for this line.")))
    return bytes(doc.output())


def render_credit_note_pdf(note: CreditNote) -> bytes:
    """The invoice's layout, titled "Credit note", naming the invoice it reverses; its
    amounts are the invoice's negated. In the customer's language."""
    with translation.override(note.invoice.customer.language):
        return _credit_note_pdf(note)


def _credit_note_pdf(note: CreditNote) -> bytes:
    invoice = note.invoice
    pricing = PricingSnapshot.from_json(invoice.snapshot)
    legal = LegalDetails.from_json(note.legal)
    title = _("Credit note %(number)s") % {"number": note.display_number}
    doc, money, tokens = _start(title, legal, pricing)
    first_day, last_day = _supply_days(invoice)
    issued = invoice.legal.get("issue_date") if invoice.legal else None
    credited = invoice.display_number
    if issued:
        credited = _("%(number)s of %(date)s") % {
            "number": credited,
            "date": _day(date.fromisoformat(issued)),
        }
    facts = [
        (_("Credit note number"), note.display_number),
        (_("Issue date"), _day(legal.issue_date)),
        (_("Credits invoice"), credited),
        (_("Period of supply"), f"{_day(first_day)} – {_day(last_day)}"),
        (_("Customer number"), str(legal.buyer.id)),
        (_("Currency"), pricing.currency),
        (_("Reason"), note.reason),
    ]
    doc.set_font(doc.family, "", 9)
    _two_columns(doc, facts, widths=(40, 150), align="LEFT", line_height=4.8, bold_labels=True)
    doc.ln(4)
    _line_table(doc, note_lines(note), pricing, money, tokens)
    doc.ln(3)
    _totals(doc, note, pricing, money, tokens)
    doc.ln(2)
    doc.set_font(doc.family, "", 9)
    doc.multi_cell(
        0,
        4.5,
        doc.text_of(
            _("This credit note reverses invoice %(number)s in full: %(amount)s is no longer owed.")
            % {"number": invoice.display_number, "amount": money(-note.total)}
        ),
        align="L",
    )
    return bytes(doc.output())


def note_lines(note: CreditNote) -> list[InvoiceLine]:
    """The credit note's lines as (unsaved) invoice lines, for the invoice's line table."""
    return [
        InvoiceLine(
            position=line["position"],
            server_name=line["server_name"],
            plan_name=line["plan_name"],
            item=line["item"],
            hours=line["hours"],
            tokens_per_hour=line["tokens_per_hour"],
            tokens_per_month=line["tokens_per_month"],
            rule=line["rule"],
            tokens=line["tokens"],
            amount=Decimal(line["amount"]),
        )
        for line in note.lines
    ]


def _start(title: str, legal: LegalDetails, pricing: PricingSnapshot) -> tuple[_Doc, Money, Tokens]:
    """A document's first page down to the parties, and its money and token formats."""
    seller = legal.seller

    def money(amount: Decimal, decimals: int | None = None) -> str:
        return doc.text_of(format_money(amount, pricing, decimals=decimals))

    def tokens(count: int) -> str:
        return format_tokens(count, pricing)

    footer = [
        *seller.footer.splitlines(),
        " · ".join(
            part
            for part in (
                seller.name,
                _("VAT id %(vat_id)s") % {"vat_id": seller.vat_id} if seller.vat_id else "",
                seller.registration,
            )
            if part
        ),
    ]
    doc = _Doc(
        running_head=" · ".join(part for part in (seller.name, title) if part),
        footer_lines=[line for line in footer if line.strip()],
    )
    doc.set_title(title)
    doc.add_page()

    _logo(doc, seller.logo_path)
    doc.set_font(doc.family, "B", 18)
    doc.cell(130, 10, doc.text_of(title), new_x="LMARGIN", new_y="NEXT")
    doc.ln(2)
    _parties(doc, legal)
    doc.ln(3)
    return doc, money, tokens


def _logo(doc: _Doc, path: str) -> None:
    """Top right of page 1, at most 50 × 16 mm; a logo that cannot be drawn is left out (the
    invoice matters more than its decoration)."""
    found = logo_file(path)
    if found is None:
        return
    try:
        doc.image(str(found), x=150, y=doc.get_y(), w=50, h=16, keep_aspect_ratio=True)
    except (OSError, ValueError, RuntimeError):
        logger.warning("invoice logo %s cannot be drawn", found, exc_info=True)


def _block(doc: _Doc, x: float, y: float, width: float, heading: str, text: str) -> float:
    """A headed block of lines at (x, y); returns where it ends."""
    doc.set_xy(x, y)
    doc.set_font(doc.family, "B", 9)
    doc.cell(width, 5, doc.text_of(heading), new_x="LEFT", new_y="NEXT")
    doc.set_font(doc.family, "", 9)
    doc.multi_cell(width, 4.5, doc.text_of(text), align="L", new_x="LEFT", new_y="NEXT")
    return doc.get_y()


def _parties(doc: _Doc, legal: LegalDetails) -> None:
    seller, buyer = legal.seller, legal.buyer
    top = doc.get_y()
    seller_text = _lines(
        seller.name or _("(seller name not set)"),
        seller.address,
        _vat_id(seller.vat_id),
        seller.registration,
        seller.support_email,
    )
    buyer_text = _lines(
        buyer.company_name,
        buyer.name,
        buyer.address,
        _("Country: %(country)s") % {"country": buyer.country} if buyer.country else "",
        _vat_id(buyer.vat_id),
        buyer.email,
    )
    end = max(
        _block(doc, 10, top, 90, _("From"), seller_text),
        _block(doc, 110, top, 90, _("Bill to"), buyer_text),
    )
    doc.set_xy(10, end)


def _vat_id(vat_id: str) -> str:
    return _("VAT id: %(vat_id)s") % {"vat_id": vat_id} if vat_id else ""


def _facts(doc: _Doc, invoice: Invoice, legal: LegalDetails, pricing: PricingSnapshot) -> None:
    terms = legal.seller.payment_terms_days
    first_day, last_day = _supply_days(invoice)
    token_price = format_money(
        pricing.token_price, pricing, decimals=token_price_decimals(pricing.token_price)
    )
    facts: list[tuple[str, str]] = [
        (
            _("Invoice number"),
            invoice.display_number if invoice.number else _("Assigned on issue"),
        ),
        (_("Issue date"), _day(legal.issue_date) or _("Not issued yet")),
        (_("Period of supply"), f"{_day(first_day)} – {_day(last_day)}"),
        (
            _("Due date"),
            _day(legal.due_date) or _("%(days)s days after issue") % {"days": terms},
        ),
        (_("Customer number"), str(legal.buyer.id)),
        (
            _("Currency"),
            _("%(currency)s; 1 token = %(price)s")
            % {"currency": pricing.currency, "price": token_price},
        ),
    ]
    if invoice.status != "issued" and invoice.number:
        facts.append((_("Status"), status_label(invoice.status)))
    doc.set_font(doc.family, "", 9)
    _two_columns(doc, facts, widths=(40, 150), align="LEFT", line_height=4.8, bold_labels=True)


def _supply_days(invoice: Invoice) -> tuple[date, date]:
    """The period's first and last day in the billing time zone (the period is half-open)."""
    zone = _billing_zone()
    return (
        invoice.period_start.astimezone(zone).date(),
        (invoice.period_end - _ONE_MICROSECOND).astimezone(zone).date(),
    )


def _billing_zone() -> ZoneInfo:
    return ZoneInfo(settings.BILLING_TIMEZONE)


def _line_table(
    doc: _Doc, lines: Iterable[InvoiceLine], pricing: PricingSnapshot, money: Money, tokens: Tokens
) -> None:
    price = pricing.effective_token_price
    doc.set_font(doc.family, "", 8)
    with doc.table(
        col_widths=LINE_WIDTHS,
        width=sum(LINE_WIDTHS),
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "LEFT", "RIGHT", "RIGHT"),
        line_height=3.8,
        padding=(0.8, 1),
        headings_style=FontFace(emphasis="BOLD", fill_color=235),
        repeat_headings=1,
    ) as table:
        table.row([doc.text_of(str(heading)) for heading in LINE_HEADINGS])
        suffixes = {
            "additional_ip": _("%(server)s (additional IP)"),
            "backup": _("%(server)s (backups)"),
        }
        for line in lines:
            item = suffixes.get(line.item, "%(server)s") % {"server": line.server_name}
            # A fixed monthly line is priced by the month (its tokens per hour are 0).
            monthly = line.rule == Rule.FIXED_MONTHLY
            unit = price * (line.tokens_per_month if monthly else line.tokens_per_hour)
            unit_text = money(unit, token_price_decimals(unit))
            if monthly:
                unit_text = _("%(price)s per month") % {"price": unit_text}
            if line.backup_price is not None:  # R7: a percentage of the runtime charge
                unit_text = _("%(percent)s of runtime") % {
                    "percent": format_percent(line.backup_price)
                }
            cells = (
                f"{item} — {line.plan_name}",
                str(line.hours),
                tokens(line.tokens_per_hour),
                tokens(line.tokens_per_month) if line.tokens_per_month else "—",
                unit_text,
                Rule.label_of(line.rule) + (" *" if line.discrepancy else ""),
                tokens(line.tokens),
                money(line.amount),
            )
            table.row([doc.text_of(cell) for cell in cells])


def _totals(
    doc: _Doc, invoice: Invoice | CreditNote, pricing: PricingSnapshot, money: Money, tokens: Tokens
) -> None:
    # Discounts, subtotal, taxes and total stay together on one page.
    height = 4 * len(pricing.discounts) + 6.5 * (len(invoice.taxes) + 4) + 4
    if doc.will_page_break(height):
        doc.add_page()
    doc.set_font(doc.family, "", 8)
    for name, multiplier in pricing.discounts:
        doc.multi_cell(
            0,
            4,
            doc.text_of(
                _("Discount applied to every line: %(name)s, %(discount)s")
                % {"name": name, "discount": format_discount(multiplier)}
            ),
            align="L",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    doc.ln(1)
    subtotal = _("Subtotal (%(tokens)s tokens)") % {"tokens": tokens(invoice.tokens)}
    _amount_rows(doc, [(subtotal, money(invoice.subtotal))])
    if invoice.taxes:
        doc.ln(1)
        doc.set_font(doc.family, "", 9)
        with doc.table(
            col_widths=(70, 30, 45, 45),
            width=190,
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
            line_height=4.5,
            padding=(0.8, 1),
            headings_style=FontFace(emphasis="BOLD", fill_color=235),
        ) as table:
            table.row((_("Tax"), _("Rate"), _("Taxable amount"), _("Tax amount")))
            for tax in invoice.taxes:
                table.row(
                    (
                        doc.text_of(tax["label"]),
                        format_percent(Decimal(tax["rate"])),
                        money(Decimal(tax["base"])),
                        money(Decimal(tax["amount"])),
                    )
                )
        doc.ln(1)
    _amount_rows(
        doc,
        [(_("Total tax"), money(invoice.tax_total)), (_("Total"), money(invoice.total))],
        bold_last=True,
    )


def _paid_so_far(doc: _Doc, invoice: Invoice, money: Money) -> Decimal | None:
    """Below the total, each payment or credit put on the invoice and the amount still due.
    Returns that amount; None when nothing was paid (the total is due)."""
    lines = payment_selectors.paid_lines(invoice) if invoice.number else []
    if not lines:
        return None
    due = payment_selectors.balance_of(invoice)
    rows = [(line.label, money(-line.amount)) for line in lines]
    rows.append((_("Amount due"), money(due)))
    if doc.will_page_break(5.5 * len(rows) + 1):  # with the amount due, never without it
        doc.add_page()
    doc.ln(1)
    _amount_rows(doc, rows, bold_last=True)
    return due


def _amount_rows(doc: _Doc, rows: Sequence[tuple[str, str]], bold_last: bool = False) -> None:
    """Label and amount, right-aligned under the Amount column."""
    doc.set_font(doc.family, "", 10)
    _two_columns(doc, rows, widths=(120, 70), align="RIGHT", line_height=5.5, bold_last=bold_last)


def _two_columns(
    doc: _Doc,
    rows: Sequence[tuple[str, str]],
    *,
    widths: tuple[float, float],
    align: str,
    line_height: float,
    bold_labels: bool = False,
    bold_last: bool = False,
) -> None:
    """Label-value rows without borders; long values wrap inside their column."""
    bold = FontFace(emphasis="BOLD")
    with doc.table(
        col_widths=widths,
        width=sum(widths),
        first_row_as_headings=False,
        borders_layout=TableBordersLayout.NONE,
        text_align=(align, align),
        line_height=line_height,
        padding=(0.3, 1),
    ) as table:
        for index, (label, value) in enumerate(rows):
            last = bold_last and index == len(rows) - 1
            row = table.row()
            row.cell(doc.text_of(label), style=bold if bold_labels or last else None)
            row.cell(doc.text_of(value), style=bold if last else None)


def _payment(
    doc: _Doc, invoice: Invoice, legal: LegalDetails, money: Money, due: Decimal | None
) -> None:
    seller, buyer = legal.seller, legal.buyer
    doc.ln(2)
    doc.set_font(doc.family, "", 9)
    if Decimal(invoice.tax_total) == 0:
        reason = buyer.tax_exemption_reason or _("No tax applies to this supply.")
        no_tax = _("No tax charged: %(reason)s") % {"reason": reason}
        doc.multi_cell(0, 4.5, doc.text_of(no_tax), align="L")
        doc.set_x(doc.l_margin)
    doc.ln(2)
    if due is not None and due <= 0:
        ask = _("Paid in full: thank you.")
    elif legal.due_date:
        owed = Decimal(invoice.total) if due is None else due
        ask = _("Please pay %(amount)s by %(date)s, quoting %(number)s.") % {
            "amount": money(owed),
            "date": _day(legal.due_date),
            "number": invoice.display_number,
        }
    else:
        ask = _("Payment is due %(days)s days after the invoice is issued.") % {
            "days": seller.payment_terms_days
        }
    link = payment_link(legal, invoice)
    reference = invoice.printed_payment_reference
    paragraphs = [
        (doc.text_of(_lines(ask, seller.payment_instructions)), ""),
        (
            doc.text_of(
                _("Payment reference for bank transfers: %(reference)s") % {"reference": reference}
            )
            if reference
            else "",
            "",
        ),
        (doc.text_of(_("Pay online: %(link)s") % {"link": link}) if link else "", link),
        (
            doc.text_of(
                _("Questions about this invoice: %(email)s") % {"email": seller.support_email}
            )
            if seller.support_email
            else "",
            "",
        ),
    ]
    paragraphs = [(text, target) for text, target in paragraphs if text]
    # The payment block stays on one page: a page holding only its last line reads as lost.
    height = 6.0
    for text, _target in paragraphs:
        measured = doc.multi_cell(0, 4.5, text, dry_run=True, output="HEIGHT")
        assert isinstance(measured, float | int)
        height += measured
    if doc.will_page_break(height):
        doc.add_page()
    doc.set_font(doc.family, "B", 10)
    doc.cell(0, 6, doc.text_of(_("How to pay")), new_x="LMARGIN", new_y="NEXT")
    doc.set_font(doc.family, "", 9)
    for text, target in paragraphs:
        doc.multi_cell(0, 4.5, text, align="L", link=target or None, new_x="LMARGIN")
