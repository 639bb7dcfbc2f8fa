"""Routes of online payment, included at the site's root (bridge/urls.py)."""

from django.urls import path

from payments import stripe_views

urlpatterns = [
    path("payments/stripe/webhook/", stripe_views.stripe_webhook, name="stripe-webhook"),
    path("account/invoices/<int:pk>/pay/", stripe_views.pay_invoice, name="account-invoice-pay"),
    # The signed token names the invoice; it is in the path so a pasted link keeps it.
    path("account/pay/<str:token>/", stripe_views.pay_page, name="payments-pay"),
]
