"""`{% pay_now invoice %}`: the portal's "Pay now" button, shown only while Stripe is on and
the invoice has something left to pay."""

from typing import Any

from django import template

from usage.models import Invoice

register = template.Library()


@register.inclusion_tag("payments/_pay_now.html", takes_context=True)
def pay_now(context: template.Context, invoice: Invoice) -> dict[str, Any]:
    from payments import stripe_pay

    return {
        "show": stripe_pay.payable(invoice),
        "invoice": invoice,
        "csrf_token": context.get("csrf_token", ""),
    }
