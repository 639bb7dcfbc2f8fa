"""What staff and customers read about payments: paid and balance of invoices (annotated in
one query for lists), a customer's balance and credit per currency, and their dunning step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import (
    Case,
    DecimalField,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from bridge.models import DeliveryState
from bridge.money import CurrencyDisplay, format_money
from payments.models import Allocation, Payment, PaymentMethod, Reminder
from pricing.models import Currency
from usage import legal
from usage.models import DunningAction, DunningEvent, Invoice, InvoiceStatus
from usage.rules import PricingSnapshot
from users.models import Customer, CustomerStatus

if TYPE_CHECKING:  # a dev dependency (django-stubs): the name only
    from django_stubs_ext import StrOrPromise

ZERO = Decimal(0)
_MONEY = DecimalField(max_digits=20, decimal_places=4)


def with_paid(invoices: QuerySet[Invoice]) -> QuerySet[Invoice]:
    """`invoices` annotated with `paid_amount` (what payments put on each) and
    `balance_amount` (what is still owed: 0 for a void or a draft), without a join that
    would multiply rows."""
    paid = (
        Allocation.objects.filter(invoice=OuterRef("pk"))
        .order_by()
        .values("invoice")
        .annotate(s=Sum("amount"))
        .values("s")
    )
    return invoices.annotate(
        paid_amount=Coalesce(Subquery(paid, output_field=_MONEY), Value(ZERO), output_field=_MONEY)
    ).annotate(
        balance_amount=Case(
            When(status=InvoiceStatus.ISSUED, then=F("total") - F("paid_amount")),
            default=Value(ZERO),
            output_field=_MONEY,
        )
    )


def paid_of(invoice: Invoice) -> Decimal:
    """What payments put on the invoice (the annotation when `with_paid` made it)."""
    annotated = getattr(invoice, "paid_amount", None)
    if annotated is not None:
        return Decimal(annotated)
    return Allocation.objects.filter(invoice=invoice).aggregate(s=Sum("amount"))["s"] or ZERO


def balance_of(invoice: Invoice) -> Decimal:
    """What is still owed on it: 0 unless issued (a draft is not owed yet, a paid or void
    one no longer)."""
    annotated = getattr(invoice, "balance_amount", None)
    if annotated is not None:
        return Decimal(annotated)
    if invoice.status != InvoiceStatus.ISSUED:
        return ZERO
    return invoice.total - paid_of(invoice)


@dataclass(frozen=True)
class CurrencyBalance:
    currency: str
    owed: Decimal  # open balance of issued invoices
    credit: Decimal  # money received and not yet used
    display: CurrencyDisplay

    @property
    def owed_text(self) -> str:
        return format_money(self.owed, self.display)

    @property
    def credit_text(self) -> str:
        return format_money(self.credit, self.display)


def balances(customer_id: int) -> list[CurrencyBalance]:
    """Per currency the customer has invoices or payments in: owed and credit."""
    owed: dict[str, Decimal] = {}
    for invoice in with_paid(
        Invoice.objects.filter(customer_id=customer_id, status=InvoiceStatus.ISSUED)
    ).only("currency", "total", "status"):
        owed[invoice.currency] = owed.get(invoice.currency, ZERO) + balance_of(invoice)
    received: dict[str, Decimal] = {
        row["currency"]: row["s"]
        for row in Payment.objects.filter(customer_id=customer_id)
        .values("currency")
        .annotate(s=Sum("amount"))
    }
    used: dict[str, Decimal] = {
        row["payment__currency"]: row["s"]
        for row in Allocation.objects.filter(payment__customer_id=customer_id)
        .values("payment__currency")
        .annotate(s=Sum("amount"))
    }
    return [
        CurrencyBalance(
            currency=code,
            owed=owed.get(code, ZERO),
            credit=received.get(code, ZERO) - used.get(code, ZERO),
            display=currency_display(code),
        )
        for code in sorted(set(owed) | set(received))
    ]


@dataclass(frozen=True)
class PlainDisplay:
    """A currency the price book no longer has and no invoice wrote: its code after the
    amount, two decimals."""

    display_prefix: str
    display_suffix: str
    decimals: int = 2
    thousands_separator: str = ","
    decimals_separator: str = "."


def currency_display(code: str, known: CurrencyDisplay | None = None) -> CurrencyDisplay:
    """How amounts in `code` are written: `known` when given (a customer's own currency,
    selected with the row), else the price book's, else as the newest invoice in it wrote
    them (as usage.selectors.invoice_totals does)."""
    if known is not None:
        return known
    row = Currency.objects.filter(code=code).first()
    if row is not None:
        return row
    newest = Invoice.objects.filter(currency=code).order_by("-generated_at").first()
    if newest is not None:
        return PricingSnapshot.from_json(newest.snapshot)
    return PlainDisplay(display_prefix="", display_suffix=f" {code}")


def payment_amount(payment: Payment) -> str:
    """The payment's amount as its currency writes it (no query when the payment is in the
    currency of its customer, selected with it)."""
    currency = payment.customer.currency
    known = currency if currency is not None and currency.code == payment.currency else None
    return format_money(payment.amount, currency_display(payment.currency, known))


@dataclass(frozen=True)
class DunningStep:
    """Where a customer stands in dunning: the newest reminder or the suspension."""

    label: str
    at: datetime
    suspended: bool


def dunning_step(customer: Customer) -> DunningStep | None:
    """ "Suspended since …" while dunning's suspension holds; else the newest reminder sent
    about an invoice still open; None when nothing is being chased."""
    if customer.status == CustomerStatus.SUSPENDED:
        last = (
            DunningEvent.objects.filter(customer=customer)
            .exclude(action=DunningAction.FAILED)
            .first()
        )
        if last is not None and last.action == DunningAction.SUSPENDED:
            label = _("Suspended since %(date)s") % {"date": _day(last.at)}
            return DunningStep(label, last.at, suspended=True)
    reminder = (
        Reminder.objects.filter(
            customer=customer, state=DeliveryState.SENT, invoice__status=InvoiceStatus.ISSUED
        )
        .select_related("invoice")
        .order_by("-sent_at", "-id")
        .first()
    )
    if reminder is None or reminder.sent_at is None:
        return None
    label = _("Reminder %(number)s sent %(date)s (%(invoice)s, %(step)s)") % {
        "number": reminder.number,
        "date": _day(reminder.sent_at),
        "invoice": reminder.invoice.display_number,
        "step": reminder.step_label,
    }
    return DunningStep(label, reminder.sent_at, suspended=False)


def _day(moment: datetime) -> str:
    """The calendar day in the billing time zone, as invoice dates are, in the active
    language's short form."""
    return legal.short_date(timezone.localtime(moment, ZoneInfo(settings.BILLING_TIMEZONE)).date())


# The method inside a sentence ("Paid … (bank transfer)"): each language says for itself
# which words are capitalised there (German capitalises every noun).
_IN_A_SENTENCE: dict[str, StrOrPromise] = {
    PaymentMethod.CARD: pgettext_lazy("payment method in a sentence", "card"),
    PaymentMethod.SEPA_DEBIT: pgettext_lazy("payment method in a sentence", "SEPA Direct Debit"),
    PaymentMethod.BANK_TRANSFER: pgettext_lazy("payment method in a sentence", "bank transfer"),
    PaymentMethod.MANUAL: pgettext_lazy("payment method in a sentence", "manual"),
}


@dataclass(frozen=True)
class PaidLine:
    """One allocation as the invoice's documents print it, below the total."""

    label: str  # "Paid 2026-11-03 (bank transfer)" or "Credit applied", translated
    amount: Decimal


def paid_lines(invoice: Invoice) -> list[PaidLine]:
    """What was put on the invoice, oldest first: money received before the invoice was
    issued is credit it used, the rest a payment on its day (in the billing time zone, as
    invoice dates are)."""
    lines = []
    for allocation in (
        Allocation.objects.filter(invoice=invoice)
        .select_related("payment")
        .order_by("allocated_at", "id")
    ):
        payment = allocation.payment
        if invoice.issued_at is not None and payment.received_at < invoice.issued_at:
            label = _("Credit applied")
        else:
            label = _("Paid %(date)s (%(method)s)") % {
                "date": _day(payment.received_at),
                "method": _IN_A_SENTENCE.get(payment.method, payment.method),
            }
        lines.append(PaidLine(str(label), allocation.amount))
    return lines
