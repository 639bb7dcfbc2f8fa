"""Admin for billing staff: invoices (filters, totals, actions, PDF, CSV), usage and orphans,
cycle settings, dunning log. State changes go through usage.invoice_states."""

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from bridge.admin_tools import ReadOnlyAdminMixin, SingletonModelAdmin
from bridge.filters import MAX_ID
from bridge.money import format_money
from solusio.errors import SolusIOError
from usage import emails, invoice_states, legal, selectors
from usage.exports import invoices_csv
from usage.filters import month_of
from usage.models import (
    BillingSettings,
    DunningEvent,
    Invoice,
    InvoiceEmail,
    InvoiceLine,
    UsagePull,
    UsageRecord,
)
from usage.pdf import invoice_filename, render_invoice_pdf
from usage.rules import PricingSnapshot


class CheckedListFilter(admin.SimpleListFilter):
    """A filter that is applied (so a bad value is refused) even when it offers no choice:
    the admin drops a filter without choices, and its value with it, silently."""

    def has_output(self) -> bool:
        return self.value() is not None or super().has_output()


class PeriodFilter(CheckedListFilter):
    title = "period"
    parameter_name = "period"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        months = model_admin.model.objects.order_by("-period").values_list("period", flat=True)
        return [(f"{m:%Y-%m}", f"{m:%Y-%m}") for m in months.distinct()[:36]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(period=month_of(value))
        except ValueError:
            # The admin's own answer to a bad filter: back to the list with "?e=1".
            raise IncorrectLookupParameters(f"period must look like 2026-10: {value!r}") from None


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Overdue (unpaid past the dunning days)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in (None, ""):
            return queryset
        if value != "yes":
            raise IncorrectLookupParameters(f"overdue must be yes: {value!r}")
        days = BillingSettings.load().dunning_days
        return selectors.overdue_invoices(timezone.now(), days, within=queryset)


class CustomerFilter(CheckedListFilter):
    """?customer=<id> (linked from elsewhere); not a list of every customer, which at
    tens of thousands would make the page unusable. Search finds customers by e-mail."""

    title = "customer"
    parameter_name = "customer"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"#{value}")] if value and value.isdigit() else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit() or int(value) > MAX_ID:
            raise IncorrectLookupParameters(f"customer must be an id: {value!r}")
        return queryset.filter(customer_id=int(value))


class InvoiceLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = (
        "position", "server_name", "item", "plan_name", "hours", "tokens_per_hour",
        "tokens_per_month", "rule", "tokens", "amount", "reported_tokens", "discrepancy",
    )  # fmt: skip
    readonly_fields = fields


def _email_of(invoice: Invoice) -> InvoiceEmail | None:
    try:
        return invoice.email
    except InvoiceEmail.DoesNotExist:
        return None


def _money(invoice: Invoice, amount: Decimal) -> str:
    return format_money(amount, PricingSnapshot.from_json(invoice.snapshot))


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "number_display", "customer", "period_display", "status", "currency", "tokens",
        "total_display", "discrepancies", "issued_at", "paid_at", "email_display",
    )  # fmt: skip
    list_filter = (
        PeriodFilter, "status", "currency", OverdueFilter, CustomerFilter, "discrepancies",
    )  # fmt: skip
    search_fields = ("=number", "=customer__id", "customer__email", "customer__name")
    list_select_related = ("customer", "email")
    inlines = [InvoiceLineInline]
    actions = ["issue", "mark_paid", "void", "regenerate", "resend_email", "export_csv"]
    readonly_fields = (
        "customer", "period", "period_start", "period_end", "status", "number", "currency",
        "tokens", "subtotal", "tax_total", "total", "tax_table", "snapshot_table",
        "legal_table", "discrepancies", "generated_at", "issued_at", "paid_at", "voided_at",
        "email_delivery", "documents",
    )  # fmt: skip
    exclude = ("snapshot", "taxes", "fingerprint", "legal")
    change_list_template = "admin/usage/invoice/change_list.html"

    # Invoices come from the cycle close and change only through the actions (which need
    # "change"): every field is read-only and nothing is added or deleted by hand.
    keep_permissions = ("change",)

    @admin.display(description="number", ordering="number")
    def number_display(self, obj: Invoice) -> str:
        return obj.display_number

    @admin.display(description="period", ordering="period")
    def period_display(self, obj: Invoice) -> str:
        return f"{obj.period:%Y-%m}"

    @admin.display(description="total", ordering="total")
    def total_display(self, obj: Invoice) -> str:
        return _money(obj, obj.total)

    @admin.display(description="e-mail")
    def email_display(self, obj: Invoice) -> str:
        record = _email_of(obj)
        return record.get_state_display() if record else "—"

    @admin.display(description="e-mail to the customer")
    def email_delivery(self, obj: Invoice) -> SafeString:
        record = _email_of(obj)
        if record is None:
            return format_html("{}", "none (drafts are not e-mailed; or e-mails were off)")
        rows = [
            ("state", record.get_state_display()),
            ("attempts", str(record.attempts)),
            ("sent", f"{record.sent_at:%Y-%m-%d %H:%M} UTC to {record.recipient}")
            if record.sent_at
            else ("sent", "not yet"),
            ("next attempt", f"{record.next_attempt_at:%Y-%m-%d %H:%M} UTC")
            if record.next_attempt_at
            else ("next attempt", "—"),
            ("last error", record.last_error or "—"),
        ]
        body = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
        return format_html("<table>{}</table>", body)

    @admin.display(description="taxes")
    def tax_table(self, obj: Invoice) -> SafeString:
        rows = [
            (
                t["label"],
                f"{Decimal(t['rate']).normalize():f} %",
                _money(obj, Decimal(t["base"])),
                _money(obj, Decimal(t["amount"])),
            )
            for t in obj.taxes
        ]
        if not rows:
            return format_html("{}", "none")
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>on {}</td><td>{}</td></tr>", rows
        )
        return format_html("<table>{}</table>", body)

    @admin.display(description="pricing snapshot")
    def snapshot_table(self, obj: Invoice) -> SafeString:
        s = PricingSnapshot.from_json(obj.snapshot)
        rows = [
            ("currency", f"{s.currency} (1 token = {s.token_price.normalize():f})"),
            ("display", format_money(Decimal("1234.5"), s)),
            ("discounts", ", ".join(f"{n} ×{m.normalize():f}" for n, m in s.discounts) or "none"),
            ("taxes", ", ".join(f"{label} {r.normalize():f} %" for label, r in s.taxes) or "none"),
            ("taxes compound", "yes" if s.compound else "no"),
            ("billing exempt", "yes" if s.exempt else "no"),
        ]
        body = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
        return format_html("<table>{}</table>", body)

    @admin.display(description="seller and customer")
    def legal_table(self, obj: Invoice) -> SafeString:
        details = legal.details_of(obj)
        seller, buyer = details.seller, details.buyer
        frozen = "as issued" if obj.legal else "current (frozen when issued)"
        rows = [
            ("details", frozen),
            ("seller", ", ".join(filter(None, [seller.name, *seller.address.splitlines()]))),
            ("seller VAT id", seller.vat_id or "—"),
            (
                "customer",
                ", ".join(
                    filter(None, [buyer.company_name, buyer.name, *buyer.address.splitlines()])
                ),
            ),
            ("customer VAT id", buyer.vat_id or "—"),
            ("tax exemption", buyer.tax_exemption_reason or "—"),
            ("issue date", f"{details.issue_date:%Y-%m-%d}" if details.issue_date else "—"),
            ("due date", f"{details.due_date:%Y-%m-%d}" if details.due_date else "—"),
        ]
        body = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
        return format_html("<table>{}</table>", body)

    @admin.display(description="documents")
    def documents(self, obj: Invoice) -> SafeString:
        pdf = reverse("admin:usage_invoice_pdf", args=[obj.pk])
        preview = reverse("admin:usage_invoice_preview", args=[obj.customer_id])
        return format_html(
            '<a href="{}">Download PDF</a> · <a href="{}">This customer\'s month so far</a>',
            pdf,
            preview,
        )

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="usage_invoice_pdf",
            ),
            path(
                "preview/<int:customer_id>/",
                self.admin_site.admin_view(self.preview_view),
                name="usage_invoice_preview",
            ),
        ]
        return extra + super().get_urls()

    def pdf_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=pk)
        response = HttpResponse(render_invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_filename(invoice)}.pdf"'
        return response

    def preview_view(self, request: HttpRequest, customer_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        from users.models import Customer

        customer = get_object_or_404(Customer, pk=customer_id)
        error = preview = None
        try:
            preview = selectors.preview_invoice(
                customer_id=customer.pk, live=request.GET.get("live") == "1"
            )
        except SolusIOError as exc:
            error = f"SolusIO did not answer: {exc}"
        context = {
            **self.admin_site.each_context(request),
            "title": f"Month to date: {customer}",
            "customer": customer,
            "preview": preview,
            "period": preview.period if preview else None,
            "draft": preview.draft if preview else None,
            "error": error,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/usage/invoice/preview.html", context)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        try:
            queryset = response.context_data["cl"].queryset  # type: ignore[attr-defined]
        except (AttributeError, KeyError):
            return response
        response.context_data["totals"] = (  # type: ignore[attr-defined]
            queryset.order_by("currency")
            .values("currency")
            .annotate(tokens=Sum("tokens"), subtotal=Sum("subtotal"), total=Sum("total"))
        )
        return response

    # --- actions ---------------------------------------------------------------------

    def _each(
        self, request: HttpRequest, queryset: QuerySet[Invoice], verb: str, change: Any
    ) -> None:
        done = failed = 0
        for invoice in queryset:
            try:
                change(invoice)
                done += 1
            except invoice_states.InvoiceStateError as exc:
                failed += 1
                self.message_user(request, str(exc), messages.WARNING)
        self.message_user(request, f"{verb}: {done} invoice(s); {failed} skipped.")

    @admin.action(description="Issue selected drafts (assigns numbers)", permissions=["change"])
    def issue(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        issued = invoice_states.issue_invoices(invoice_ids=ids)
        self.message_user(request, f"Issued {issued} of {len(ids)} (only drafts are issued).")

    @admin.action(description="Mark selected as paid", permissions=["change"])
    def mark_paid(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._each(
            request, queryset, "Marked paid", lambda i: invoice_states.mark_paid(invoice_id=i.pk)
        )

    @admin.action(description="Void selected (keeps the number)", permissions=["change"])
    def void(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._each(
            request, queryset, "Voided", lambda i: invoice_states.void_invoice(invoice_id=i.pk)
        )

    @admin.action(
        description="Regenerate selected drafts from stored usage", permissions=["change"]
    )
    def regenerate(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._each(
            request,
            queryset,
            "Regenerated",
            lambda i: invoice_states.regenerate_invoice(invoice_id=i.pk),
        )

    @admin.action(description="E-mail selected to their customers (again)", permissions=["change"])
    def resend_email(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        queued = emails.resend(invoice_ids=ids)
        self.message_user(
            request,
            f"Queued {queued} of {len(ids)} e-mail(s) (drafts and void invoices are not sent).",
        )

    @admin.action(description="Export selected as CSV (one row per line)", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse:
        rows = queryset.select_related("customer").prefetch_related("lines").order_by("id")
        response = HttpResponse(invoices_csv(rows), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="invoices.csv"'
        return response


class OrphanFilter(admin.SimpleListFilter):
    title = "customer known"
    parameter_name = "orphan"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Orphans (unknown billing user)"), ("no", "Known customers")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in (None, ""):
            return queryset
        if value not in ("yes", "no"):
            raise IncorrectLookupParameters(f"orphan must be yes or no: {value!r}")
        return queryset.filter(customer__isnull=value == "yes")


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Raw usage as SolusIO reported it; orphans are the rows no customer claims."""

    list_display = (
        "period", "billing_user_id", "customer", "server_name", "item", "plan_name", "hours",
        "tokens_per_hour", "tokens_per_month", "reported_tokens", "started_at", "ended_at",
    )  # fmt: skip
    list_filter = (OrphanFilter, PeriodFilter, "item")
    search_fields = ("=billing_user_id", "=server_id", "server_name", "server_uuid")
    list_select_related = ("customer",)

    keep_permissions = ("delete",)


@admin.register(UsagePull)
class UsagePullAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("period", "rows", "started_at", "completed_at", "closed_at")

    keep_permissions = ("delete",)


@admin.register(BillingSettings)
class BillingSettingsAdmin(SingletonModelAdmin):
    pass


@admin.register(DunningEvent)
class DunningEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "customer", "action", "invoice", "reason")
    list_filter = ("action",)
    search_fields = ("=customer__id", "customer__email")
    list_select_related = ("customer", "invoice")

    keep_permissions = ("delete",)
