from django.urls import path

from usage import views

urlpatterns = [
    path("", views.invoices, name="account-invoices"),
    path("<int:pk>/", views.invoice_detail, name="account-invoice"),
    path("<int:pk>/pdf/", views.invoice_pdf, name="account-invoice-pdf"),
    path("<int:pk>/facturx/", views.invoice_facturx, name="account-invoice-facturx"),
    path("credit-notes/<int:pk>/pdf/", views.credit_note_pdf, name="account-credit-note-pdf"),
    path(
        "credit-notes/<int:pk>/facturx/",
        views.credit_note_facturx,
        name="account-credit-note-facturx",
    ),
]
