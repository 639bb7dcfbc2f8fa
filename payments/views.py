"""The customer's payments under /account/payments/: money received and refunded, what it
settled, and the credit and balance per currency. Who the customer is comes from
users.selectors (the portal's gate)."""

from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from payments import selectors
from payments.models import Allocation, Payment
from users.decorators import customer_required
from users.models import Customer


@never_cache
@require_safe
@customer_required
def payments(request: HttpRequest, customer: Customer) -> HttpResponse:
    rows = (
        Payment.objects.filter(customer=customer)
        .select_related("customer__currency", "credit_note")
        .prefetch_related(
            Prefetch("allocations", queryset=Allocation.objects.select_related("invoice"))
        )
        .order_by("-received_at", "-id")[:200]
    )
    return render(
        request,
        "payments/account_payments.html",
        {
            "customer": customer,
            "payments": [(p, selectors.payment_amount(p)) for p in rows],
            "balances": selectors.balances(customer.pk),
            "step": selectors.dunning_step(customer),
        },
    )
