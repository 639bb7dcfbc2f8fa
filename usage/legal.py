"""What an invoice states besides its lines (DESIGN §6): seller, customer, issue and due date,
how to pay. Frozen into `Invoice.legal` when issued; a draft shows the current details."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import dateformat
from django.utils.translation import gettext_lazy, pgettext

from bridge.money import round_money
from usage import db  # also registers the `__any` lookup used here
from usage.models import BillingSettings, Invoice
from usage.rules import PricingSnapshot
from users.models import Customer


@dataclass(frozen=True)
class Seller:
    name: str
    address: str
    vat_id: str
    registration: str
    support_email: str
    payment_instructions: str
    payment_link_template: str
    payment_terms_days: int
    logo_path: str
    footer: str


@dataclass(frozen=True)
class Buyer:
    id: int
    email: str
    name: str
    company_name: str
    address: str
    country: str
    vat_id: str
    tax_exemption_reason: str


@dataclass(frozen=True)
class LegalDetails:
    seller: Seller
    buyer: Buyer
    issue_date: date | None  # None: a draft
    due_date: date | None

    def as_json(self) -> dict[str, Any]:
        return {
            # Flat records: a shallow copy (asdict's deep copy was most of issuing's CPU).
            "seller": {f.name: getattr(self.seller, f.name) for f in fields(self.seller)},
            "customer": {f.name: getattr(self.buyer, f.name) for f in fields(self.buyer)},
            "issue_date": self.issue_date.isoformat() if self.issue_date else None,
            "due_date": self.due_date.isoformat() if self.due_date else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LegalDetails:
        issue, due = data.get("issue_date"), data.get("due_date")
        return cls(
            seller=Seller(**data["seller"]),
            buyer=Buyer(**data["customer"]),
            issue_date=date.fromisoformat(issue) if issue else None,
            due_date=date.fromisoformat(due) if due else None,
        )


def seller_of(row: BillingSettings) -> Seller:
    return Seller(
        name=row.seller_name,
        address=row.seller_address,
        vat_id=row.seller_vat_id,
        registration=row.seller_registration,
        support_email=row.support_email,
        payment_instructions=row.payment_instructions,
        payment_link_template=row.payment_link_template,
        payment_terms_days=row.payment_terms_days,
        logo_path=row.logo_path,
        footer=row.invoice_footer,
    )


# The customer fields an invoice freezes (buyer_of reads no others), in Buyer's order.
BUYER_FIELDS = (
    "id", "email", "name", "company_name", "billing_address", "country", "vat_id",
    "tax_exemption_reason",
)  # fmt: skip
# Buyer's fields (its JSON keys), one for each of BUYER_FIELDS.
_BUYER_KEYS = tuple(f.name for f in fields(Buyer))
assert len(_BUYER_KEYS) == len(BUYER_FIELDS)


def buyer_of(customer: Customer) -> Buyer:
    return Buyer(
        id=customer.pk,
        email=customer.email,
        name=customer.name,
        company_name=customer.company_name,
        address=customer.billing_address,
        country=customer.country,
        vat_id=customer.vat_id,
        tax_exemption_reason=customer.tax_exemption_reason,
    )


# A placeholder buyer, for the part of the details every customer shares.
_NO_BUYER = Buyer(0, "", "", "", "", "", "", "")


def issue_and_due_date(issued_at: datetime, terms_days: int) -> tuple[date, date]:
    """The issue date is the calendar day in the billing time zone (as the periods are)."""
    issued = issued_at.astimezone(ZoneInfo(settings.BILLING_TIMEZONE)).date()
    return issued, issued + timedelta(days=terms_days)


def details_on_issue(*, customer_ids: Iterable[int], now: datetime) -> dict[int, dict[str, Any]]:
    """The `Invoice.legal` value of each customer's invoice issued at `now`."""
    seller = seller_of(BillingSettings.load())
    issued, due = issue_and_due_date(now, seller.payment_terms_days)
    # LegalDetails(seller, buyer_of(customer), issued, due).as_json() of each customer, from
    # plain rows: the seller's part is the same for all (one dict, shared), and a close
    # issues tens of thousands (model instances and dataclasses were most of this).
    shared = LegalDetails(seller, _NO_BUYER, issued, due).as_json()
    rows = Customer.objects.filter(pk__any=list(set(customer_ids))).values_list(*BUYER_FIELDS)
    return {
        row[0]: {**shared, "customer": dict(zip(_BUYER_KEYS, row, strict=True))} for row in rows
    }


def details_on_issue_sql(*, now: datetime, customer: str) -> tuple[str, list[Any]]:
    """`details_on_issue`'s value as a PostgreSQL expression and its parameters, for a
    statement in which `customer` is the alias of the invoice's customer row: made by the
    database as it writes the invoice (a close issues tens of thousands; their JSON made
    here and parsed there was a quarter of issuing). Equal, as jsonb, to the value of
    `details_on_issue` (a test compares them)."""
    seller = seller_of(BillingSettings.load())
    issued, due = issue_and_due_date(now, seller.payment_terms_days)
    shared = LegalDetails(seller, _NO_BUYER, issued, due).as_json()
    del shared["customer"]
    qn = connection.ops.quote_name
    columns = db.column_names(Customer, BUYER_FIELDS)
    pairs = ", ".join(
        f"'{key}', {customer}.{qn(column)}"
        for key, column in zip(_BUYER_KEYS, columns, strict=True)
    )
    sql = f"(%s::jsonb || jsonb_build_object('customer', jsonb_build_object({pairs})))"
    return sql, [json.dumps(shared)]


def details_of(invoice: Invoice) -> LegalDetails:
    """The issued invoice's frozen details; the current ones for a draft (and for an invoice
    issued before details were frozen, with its dates from `issued_at`)."""
    if invoice.legal:
        return LegalDetails.from_json(invoice.legal)
    seller = seller_of(BillingSettings.load())
    issued = due = None
    if invoice.issued_at:
        issued, due = issue_and_due_date(invoice.issued_at, seller.payment_terms_days)
    return LegalDetails(seller, buyer_of(invoice.customer), issued, due)


def long_date(value: date) -> str:
    """2 November 2026 in English: no leading zero, the month in words (never mistaken for
    11/2); each language writes its own (German 02.11.2026), as its catalogue says."""
    return dateformat.format(value, pgettext("date format", "j F Y"))


def short_date(value: date) -> str:
    """2026-11-02 in English, where a line is short (a payment on an invoice, a dunning
    step); German 02.11.2026, as its catalogue says."""
    return dateformat.format(value, pgettext("short date format", "Y-m-d"))


def month_and_year(value: date) -> str:
    """November 2026, the month in the active language ("Oktober 2026")."""
    return dateformat.format(value, pgettext("month format", "F Y"))


# An invoice's status as its customer reads it (the model's labels are the staff's words).
_STATUS_LABELS = {
    "draft": gettext_lazy("Draft"),
    "issued": gettext_lazy("Issued"),
    "paid": gettext_lazy("Paid"),
    "void": gettext_lazy("Void"),
}


def status_label(status: str) -> str:
    """The status in the active language; one this version does not know, as stored."""
    label = _STATUS_LABELS.get(status)
    return str(label) if label else status


def payment_link(details: LegalDetails, invoice: Invoice) -> str:
    """The link to pay this invoice online: the bridge's own signed Stripe pay link while
    Stripe is on, else the seller's template filled in; empty for a draft."""
    from payments import stripe_pay  # payments builds on usage; import late

    online = stripe_pay.pay_link(invoice)
    if online:
        return online
    template = details.seller.payment_link_template
    if not template or not invoice.number:
        return ""
    decimals = PricingSnapshot.from_json(invoice.snapshot).decimals
    return template.format(
        number=invoice.display_number,
        total=round_money(Decimal(invoice.total), decimals),
        currency=invoice.currency,
        customer=invoice.customer_id,
    )
