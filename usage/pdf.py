"""An invoice as PDF (fpdf2: pure Python, no system libraries).

Money is written as the invoice's own snapshot of the customer's currency says (prefix,
suffix, separators, decimals), so a PDF rendered years later matches the one sent.
A Unicode TrueType font is used when one is found (INVOICE_PDF_FONT, or DejaVu Sans where
the system has it); otherwise the PDF core font, which cannot draw every currency sign, so
signs outside Latin-1 are spelled out (€ → EUR).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from django.conf import settings
from fpdf import FPDF

from bridge.money import (
    format_discount,
    format_money,
    format_percent,
    format_tokens,
    token_price_decimals,
)
from usage.models import Invoice
from usage.rules import PricingSnapshot, Rule

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


def _font_path() -> str | None:
    configured = getattr(settings, "INVOICE_PDF_FONT", "")
    for candidate in (configured, *_FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


class _Doc(FPDF):
    def __init__(self) -> None:
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

    def text_of(self, text: str) -> str:
        if self.unicode:
            return text
        for sign, spelled in _SPELLED.items():
            text = text.replace(sign, spelled)
        return text.encode("latin-1", "replace").decode("latin-1")


def invoice_filename(invoice: Invoice) -> str:
    """The PDF's file name, without `.pdf`."""
    if invoice.number:
        return f"invoice-{invoice.number:06d}"
    return f"draft-{invoice.customer_id}-{invoice.period:%Y-%m}"


def render_invoice_pdf(invoice: Invoice) -> bytes:
    pricing = PricingSnapshot.from_json(invoice.snapshot)
    customer = invoice.customer

    def money(amount: Decimal) -> str:
        return doc.text_of(format_money(amount, pricing))

    def tokens(count: int) -> str:
        return format_tokens(count, pricing)

    doc = _Doc()
    doc.set_title(f"Invoice {invoice.display_number}")
    doc.add_page()
    doc.set_font(doc.family, "B", 16)
    title = f"Invoice {invoice.display_number}" if invoice.number else "Draft invoice"
    doc.cell(0, 10, doc.text_of(title), new_x="LMARGIN", new_y="NEXT")
    doc.set_font(doc.family, "", 10)
    for text in (
        f"Status: {invoice.get_status_display()}",
        f"Period: {invoice.period:%B %Y} "
        f"({invoice.period_start:%Y-%m-%d %H:%M} – {invoice.period_end:%Y-%m-%d %H:%M} UTC)",
        f"Issued: {invoice.issued_at:%Y-%m-%d}" if invoice.issued_at else "Not issued yet",
        f"Customer #{customer.pk}: {customer.name or ''} <{customer.email}>",
        f"Currency: {pricing.currency}; 1 token = "
        + format_money(
            pricing.token_price, pricing, decimals=token_price_decimals(pricing.token_price)
        ),
    ):
        doc.cell(0, 6, doc.text_of(text), new_x="LMARGIN", new_y="NEXT")
    doc.ln(4)

    widths = (62, 14, 16, 18, 26, 20, 34)
    headers = ("Item", "Hours", "Tok/h", "Tok/mo", "Rule", "Tokens", "Amount")
    doc.set_font(doc.family, "B", 9)
    for width, header in zip(widths, headers, strict=True):
        doc.cell(width, 7, header, border="B", align="L" if header == "Item" else "R")
    doc.ln()
    doc.set_font(doc.family, "", 9)
    for line in invoice.lines.all():
        suffix = {"additional_ip": " (IP)", "backup": " (backups)"}.get(line.item, "")
        item = line.server_name + suffix
        rule = Rule.label_of(line.rule)
        if line.backup_price is not None:  # R7: the percentage of the runtime charge
            rule += f" {format_percent(line.backup_price)}"
        cells = (
            f"{item} — {line.plan_name}"[:48],
            str(line.hours),
            tokens(line.tokens_per_hour),
            tokens(line.tokens_per_month),
            rule + (" *" if line.discrepancy else ""),
            tokens(line.tokens),
            money(line.amount),
        )
        for width, cell in zip(widths, cells, strict=True):
            doc.cell(width, 6, doc.text_of(cell), align="L" if width == 62 else "R")
        doc.ln()
    doc.ln(3)

    def total_row(label: str, amount: Decimal, bold: bool = False) -> None:
        doc.set_font(doc.family, "B" if bold else "", 10)
        doc.cell(sum(widths[:-1]), 6, doc.text_of(label), align="R")
        doc.cell(widths[-1], 6, money(amount), align="R", new_x="LMARGIN", new_y="NEXT")

    for name, multiplier in pricing.discounts:
        doc.set_font(doc.family, "", 9)
        doc.cell(
            0,
            5,
            doc.text_of(f"Discount applied to every line: {name}, {format_discount(multiplier)}"),
            new_x="LMARGIN",
            new_y="NEXT",
        )
    total_row(f"Subtotal ({tokens(invoice.tokens)} tokens)", invoice.subtotal)
    for tax in invoice.taxes:
        total_row(f"{tax['label']} {format_percent(Decimal(tax['rate']))}", Decimal(tax["amount"]))
    total_row("Total", invoice.total, bold=True)
    if invoice.discrepancies:
        doc.ln(2)
        doc.set_font(doc.family, "", 8)
        doc.cell(0, 5, "* SolusIO reported a different charge for this line.")
    return bytes(doc.output())
