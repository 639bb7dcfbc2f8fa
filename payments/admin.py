"""Admin for billing staff: payments (recorded through payments.services, never edited or
deleted: a refund or a void corrects one), refunds against credit notes, reminders."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from bridge.admin_tools import ReadOnlyAdminMixin
from bridge.money import format_money
from payments import reminders, selectors, services
from payments.exports import payments_csv
from payments.models import Allocation, Payment, PaymentMethod, Reminder
from usage.models import CreditNote, Invoice, InvoiceStatus
from users.models import Customer

REFUND_PERMISSION = "payments.refund_payment"


class RefundFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("received", "Money received"), ("refund", "Refunds")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "received":
            return queryset.filter(amount__gt=0)
        if value == "refund":
            return queryset.filter(amount__lt=0)
        return queryset


class CustomerIdFilter(admin.SimpleListFilter):
    """?customer=<id> (linked from the customer's page); a bad id lists nothing."""

    title = "customer"
    parameter_name = "customer"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"#{value}")] if value and value.isdigit() else []

    def has_output(self) -> bool:
        return self.value() is not None

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(customer_id=int(value)) if value.isdigit() else queryset.none()


class AllocationInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Allocation
    extra = 0
    can_delete = False
    fields = ("invoice", "amount_display", "allocated_at")
    readonly_fields = fields

    @admin.display(description="amount")
    def amount_display(self, obj: Allocation) -> str:
        payment = obj.payment
        return format_money(
            obj.amount, selectors.currency_display(payment.currency, payment.customer.currency)
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Allocation]:
        return super().get_queryset(request).select_related("payment__customer__currency")


class MoneyForm(forms.Form):
    """What a payment and a refund both say; payments.services validates the rest."""

    amount = forms.DecimalField(max_digits=20, decimal_places=4, min_value=Decimal("0.0001"))
    method = forms.ChoiceField(choices=PaymentMethod.choices, initial=PaymentMethod.BANK_TRANSFER)
    reference = forms.CharField(
        max_length=255,
        required=False,
        help_text="The bank's or provider's reference: the same one is recorded only once.",
    )
    received_at = forms.SplitDateTimeField(widget=AdminSplitDateTime, label="Received at")
    note = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class RecordPaymentForm(MoneyForm):
    customer = forms.IntegerField(min_value=1, help_text="The customer number (billing id).")
    currency = forms.CharField(min_length=3, max_length=3, help_text="ISO 4217, e.g. EUR.")
    invoice = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Settle this invoice (its id) first; otherwise the oldest open ones. "
        "What is left is credit.",
    )
    field_order = [
        "customer", "amount", "currency", "method", "reference", "received_at", "invoice", "note",
    ]  # fmt: skip


class RefundForm(MoneyForm):
    pass


def _user(request: HttpRequest) -> AbstractBaseUser | None:
    user = request.user
    return user if isinstance(user, AbstractBaseUser) else None


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = (
        "received_at", "customer", "amount_display", "method", "reference", "invoices",
        "credit_note",
    )  # fmt: skip
    list_filter = (CustomerIdFilter, RefundFilter, "method", "currency", "received_at")
    search_fields = ("reference", "customer__email", "=customer__id", "note")
    list_select_related = ("customer__currency", "credit_note")
    date_hierarchy = "received_at"
    inlines = [AllocationInline]
    actions = ["export_csv"]
    fields = (
        "customer", "amount_display", "currency", "method", "reference", "received_at",
        "credit_note", "note", "unallocated", "created_at", "created_by",
    )  # fmt: skip
    readonly_fields = fields

    # Recorded through the service only (the add view below); never edited or deleted.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Payment]:
        return super().get_queryset(request).prefetch_related("allocations__invoice")

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Payment) -> str:
        return selectors.payment_amount(obj)

    @admin.display(description="invoices")
    def invoices(self, obj: Payment) -> str:
        return ", ".join(a.invoice.display_number for a in obj.allocations.all()) or "—"

    @admin.display(description="not on any invoice (credit)")
    def unallocated(self, obj: Payment) -> str:
        if obj.amount < 0:
            return "—"
        used = sum((a.amount for a in obj.allocations.all()), Decimal(0))
        return format_money(
            obj.amount - used, selectors.currency_display(obj.currency, obj.customer.currency)
        )

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Payment]) -> HttpResponse:
        rows = queryset.select_related("customer", "credit_note").prefetch_related(
            "allocations__invoice"
        )
        response = HttpResponse(payments_csv(rows.order_by("received_at", "id")), "text/csv")
        response["Content-Disposition"] = 'attachment; filename="payments.csv"'
        return response

    # --- recording ---------------------------------------------------------------------

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial: dict[str, Any] = {"received_at": timezone.now()}
        customer_id = _int(request.GET.get("customer"))
        invoice_id = _int(request.GET.get("invoice"))
        customer = Customer.objects.filter(pk=customer_id).first() if customer_id else None
        if customer is not None:
            initial |= {"customer": customer.pk, "currency": customer.currency_id}
        invoice = (
            Invoice.objects.filter(pk=invoice_id, status=InvoiceStatus.ISSUED).first()
            if invoice_id
            else None
        )
        if invoice is not None:
            initial |= {
                "customer": invoice.customer_id,
                "currency": invoice.currency,
                "invoice": invoice.pk,
                "amount": selectors.balance_of(invoice),
            }
        form = RecordPaymentForm(request.POST or None, initial=initial)
        done = self._record(
            request,
            form,
            lambda data: services.record_payment(
                customer_id=data["customer"],
                amount=data["amount"],
                currency=data["currency"],
                method=data["method"],
                received_at=data["received_at"],
                reference=data["reference"],
                invoice_id=data["invoice"],
                note=data["note"],
                user=_user(request),
            ),
        )
        if done is not None:
            return done
        return self._form_page(request, "Record a payment", form, "Record payment")

    def _record(
        self,
        request: HttpRequest,
        form: forms.Form,
        record: Callable[[dict[str, Any]], services.Recorded],
    ) -> HttpResponse | None:
        """Record the posted form through the service and go to the payment; None (the
        form again, with the service's error) when it is not valid or refused."""
        if request.method != "POST" or not form.is_valid():
            return None
        try:
            recorded = record(form.cleaned_data)
        except services.PaymentError as exc:
            form.add_error(None, str(exc))
            return None
        payment = recorded.payment
        what = f"{selectors.payment_amount(payment)} by {payment.get_method_display()}"
        if recorded.created:
            self.log_addition(request, payment, [{"added": {}}])
            paid = f"; {len(recorded.settled)} invoice(s) now paid" if payment.amount > 0 else ""
            self.message_user(request, f"Recorded {what}{paid}.", messages.SUCCESS)
        else:
            self.message_user(
                request,
                f"Already recorded under this reference: {what}. Nothing changed.",
                messages.WARNING,
            )
        return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))

    def _form_page(
        self, request: HttpRequest, title: str, form: forms.Form, submit: str, **extra: Any
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "submit": submit,
            "media": self.media + form.media,
            "opts": self.model._meta,
            **extra,
        }
        return TemplateResponse(request, "admin/payments/payment/form.html", context)

    # --- refunds -------------------------------------------------------------------------

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REFUND_PERMISSION)

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "refund/<int:credit_note_id>/",
                self.admin_site.admin_view(self.refund_view),
                name="payments_payment_refund",
            )
        ]
        return extra + super().get_urls()

    def refund_view(self, request: HttpRequest, credit_note_id: int) -> HttpResponse:
        if not self.has_refund_permission(request):
            raise PermissionDenied
        note = get_object_or_404(CreditNote.objects.select_related("invoice"), pk=credit_note_id)
        customer_id = note.invoice.customer_id
        credit = services.credit(customer_id, note.currency)
        refunded = -sum((p.amount for p in note.refunds.all()), Decimal(0))
        left = -note.total - refunded
        form = RefundForm(
            request.POST or None,
            initial={"amount": max(min(credit, left), Decimal(0)), "received_at": timezone.now()},
        )
        done = self._record(
            request,
            form,
            lambda data: services.refund(
                credit_note_id=note.pk,
                amount=data["amount"],
                method=data["method"],
                received_at=data["received_at"],
                reference=data["reference"],
                note=data["note"],
                user=_user(request),
            ),
        )
        if done is not None:
            return done
        display = selectors.currency_display(note.currency)
        return self._form_page(
            request,
            f"Refund against {note.display_number}",
            form,
            "Record refund",
            explanation=(
                f"{note.display_number} credits {note.invoice.display_number}. The customer "
                f"holds {format_money(credit, display)} of credit; "
                f"{format_money(left, display)} of this credit note is left to "
                "refund. A refund pays out credit only."
            ),
        )


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 19 else None


@admin.register(Reminder)
class ReminderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Payment reminders: one per open invoice and step of the schedule; written by the
    dunning sweep, sent by the outbox."""

    list_display = (
        "created_at", "customer", "invoice", "number", "step", "state", "attempts", "sent_at",
        "last_error",
    )  # fmt: skip
    list_filter = ("state", CustomerIdFilter)
    search_fields = ("=customer__id", "customer__email", "=invoice__number")
    list_select_related = ("customer", "invoice")
    actions = ["retry"]
    readonly_fields = [field.name for field in Reminder._meta.fields]

    # Only the action below changes a reminder (it needs "change"); every field is read-only.
    keep_permissions = ("change",)

    @admin.action(description="Send selected failed reminders again", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Reminder]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        queued = reminders.retry(reminder_ids=ids)
        self.message_user(
            request,
            f"Queued {queued} of {len(ids)} (only failed reminders of open invoices are sent).",
        )

    @admin.display(description="step")
    def step(self, obj: Reminder) -> str:
        return obj.step_label
