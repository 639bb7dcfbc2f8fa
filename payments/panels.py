"""Read-only payment panels for other apps' admin pages: an invoice's payments and a
customer's balance, credit, dunning step, payments and reminders (rendered HTML, so the
invoice and customer admins need no inline formset)."""

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString

from bridge.money import format_money
from payments import selectors
from payments.models import Allocation, Payment, Reminder
from usage.models import CreditNote, Invoice, InvoiceStatus
from usage.rules import PricingSnapshot
from users.models import Customer

VIEW_PAYMENT = "payments.view_payment"


def invoice_payments(invoice: Invoice) -> SafeString:
    """What was paid on the invoice, by which payments, and what is still owed."""
    pricing = PricingSnapshot.from_json(invoice.snapshot)
    allocations = Allocation.objects.filter(invoice=invoice).select_related("payment")
    rows = [
        {
            "at": a.allocated_at,
            "payment": a.payment,
            "method": a.payment.get_method_display(),
            "reference": a.payment.reference,
            "amount": format_money(a.amount, pricing),
            "url": reverse("admin:payments_payment_change", args=[a.payment_id]),
        }
        for a in allocations
    ]
    return render_to_string(
        "admin/payments/invoice_panel.html",
        {
            "rows": rows,
            "paid": format_money(selectors.paid_of(invoice), pricing),
            "balance": format_money(selectors.balance_of(invoice), pricing),
            "record_url": reverse("admin:payments_payment_add") + f"?invoice={invoice.pk}"
            if invoice.status == InvoiceStatus.ISSUED
            else "",
        },
    )


def customer_payments(customer: Customer) -> SafeString:
    """Balance owed and credit per currency, the dunning step, the last payments and
    reminders, and links to all of them."""
    payments = Payment.objects.filter(customer=customer).select_related(
        "customer__currency", "credit_note"
    )[:10]
    reminders = Reminder.objects.filter(customer=customer).select_related("invoice")[:10]
    return render_to_string(
        "admin/payments/customer_panel.html",
        {
            "balances": selectors.balances(customer.pk),
            "step": selectors.dunning_step(customer),
            "payments": [(p, selectors.payment_amount(p)) for p in payments],
            "reminders": reminders,
            "all_url": reverse("admin:payments_payment_changelist") + f"?customer={customer.pk}",
            "record_url": reverse("admin:payments_payment_add") + f"?customer={customer.pk}",
        },
    )


def credit_note_refunds(note: CreditNote) -> SafeString:
    """The refunds paid out against the credit note, and the way to record one."""
    pricing = PricingSnapshot.from_json(note.invoice.snapshot)
    refunds = note.refunds.order_by("received_at", "id")
    return render_to_string(
        "admin/payments/credit_note_panel.html",
        {
            "rows": [(r, format_money(r.amount, pricing)) for r in refunds],
            "refund_url": reverse("admin:payments_payment_refund", args=[note.pk]),
        },
    )
