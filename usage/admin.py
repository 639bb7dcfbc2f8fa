"""Admin for billing staff: invoices (filters, totals, actions, PDF, CSV), usage and orphans,
cycle settings, dunning log. State changes go through usage.invoice_states."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from bridge.admin_tools import ReadOnlyAdminMixin, SingletonModelAdmin
from bridge.filters import MAX_ID
from bridge.models import Delivery
from bridge.money import (
    format_discount,
    format_money,
    format_percent,
    format_tokens,
    token_price_decimals,
)
from payments import panels
from payments import selectors as payment_selectors
from solusio.errors import SolusIOError
from usage import emails, invoice_states, legal, selectors, workflow
from usage.cycle import CloseError
from usage.einvoice import documents
from usage.einvoice.data import EInvoiceError
from usage.exports import credit_notes_csv, invoices_csv
from usage.filters import month_of
from usage.models import (
    BillingSettings,
    CloseRun,
    CloseRunState,
    CloseShard,
    CreditNote,
    CreditNoteEmail,
    DunningEvent,
    Invoice,
    InvoiceEmail,
    InvoiceLine,
    ObservationPoll,
    ObservedInterval,
    UsageItemKind,
    UsagePull,
    UsageRecord,
    UsageSourceGap,
)
from usage.pdf import credit_note_filename, credit_note_pdf_response, invoice_filename
from usage.rules import PricingSnapshot, Rule


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


class IdFilter(CheckedListFilter):
    """?<parameter_name>=<id> (linked from elsewhere) on `field`: not a list of every id,
    which at tens of thousands would make the page unusable; a bad id is refused."""

    field = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"#{value}")] if value and value.isdigit() else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit() or int(value) > MAX_ID:
            raise IncorrectLookupParameters(f"{self.parameter_name} must be an id: {value!r}")
        return queryset.filter(**{self.field: int(value)})


class CustomerFilter(IdFilter):
    """?customer=<id>; search finds customers by e-mail."""

    title = "customer"
    parameter_name = "customer"
    field = "customer_id"


class YesNoFilter(admin.SimpleListFilter):
    """A filter with two choices, "yes" and "no" (anything else is a clear 400-style error)."""

    labels: tuple[str, str]  # what "yes" and "no" read as

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", self.labels[0]), ("no", self.labels[1])]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in (None, ""):
            return queryset
        if value not in ("yes", "no"):
            raise IncorrectLookupParameters(f"{self.parameter_name} must be yes or no: {value!r}")
        return self.split(queryset, value == "yes")

    def split(self, queryset: QuerySet[Any], yes: bool) -> QuerySet[Any]:
        raise NotImplementedError


class DiscrepancyFilter(YesNoFilter):
    """Whether SolusIO reported a different charge on any line (not the raw count)."""

    title = "discrepancies"
    parameter_name = "discrepancies"
    labels = ("With discrepancies (held back from issuing)", "No discrepancies")

    def split(self, queryset: QuerySet[Any], yes: bool) -> QuerySet[Any]:
        return queryset.filter(discrepancies__gt=0) if yes else queryset.filter(discrepancies=0)


class HeldFilter(YesNoFilter):
    """Drafts the close keeps for staff: usage it cannot price, or built from a fallback."""

    title = "held for review"
    parameter_name = "held"
    labels = ("Held (unpriceable usage or fallback source)", "Not held")

    def split(self, queryset: QuerySet[Any], yes: bool) -> QuerySet[Any]:
        held = ~Q(hold_reason="")
        return queryset.filter(held) if yes else queryset.exclude(held)


def _pricing(invoice: Invoice) -> PricingSnapshot:
    return PricingSnapshot.from_json(invoice.snapshot)


def _minute(moment: datetime) -> str:
    """A line's start or end to the minute in UTC, as the rest of the admin's times, in one
    short column ("2026-10-01 00:00" where Django writes "Oct. 1, 2026, midnight")."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


class InvoiceLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = (
        "position", "server_name", "item", "plan_name", "started", "ended", "hours",
        "per_hour", "per_month", "backup_percent", "rule_display", "tokens_display",
        "amount_display", "discrepancy_display",
    )  # fmt: skip
    readonly_fields = fields

    class Media:
        css = {"all": ("admin/usage/invoice_lines.css",)}

    @admin.display(description="from (UTC)", ordering="started_at")
    def started(self, obj: InvoiceLine) -> str:
        return _minute(obj.started_at)

    @admin.display(description="until (UTC)", ordering="ended_at")
    def ended(self, obj: InvoiceLine) -> str:
        return _minute(obj.ended_at) if obj.ended_at else "still running"

    @admin.display(description="backup price")
    def backup_percent(self, obj: InvoiceLine) -> str:
        # R7: a percentage of the runtime charge; blank on the lines it does not apply to.
        return "" if obj.backup_price is None else format_percent(obj.backup_price)

    @admin.display(description="tokens / hour")
    def per_hour(self, obj: InvoiceLine) -> str:
        return format_tokens(obj.tokens_per_hour, _pricing(obj.invoice))

    @admin.display(description="tokens / month")
    def per_month(self, obj: InvoiceLine) -> str:
        return format_tokens(obj.tokens_per_month, _pricing(obj.invoice))

    @admin.display(description="rule")
    def rule_display(self, obj: InvoiceLine) -> str:
        return Rule.label_of(obj.rule)

    @admin.display(description="tokens")
    def tokens_display(self, obj: InvoiceLine) -> str:
        return format_tokens(obj.tokens, _pricing(obj.invoice))

    @admin.display(description="amount")
    def amount_display(self, obj: InvoiceLine) -> str:
        return format_money(obj.amount, _pricing(obj.invoice))

    @admin.display(description="discrepancy")
    def discrepancy_display(self, obj: InvoiceLine) -> str:
        # Blank where SolusIO agrees: a mark on every line would hide the ones that matter.
        if not obj.discrepancy:
            return ""
        reported = (
            "nothing"
            if obj.reported_tokens is None
            else format_tokens(obj.reported_tokens, _pricing(obj.invoice))
        )
        return f"⚠ SolusIO reported {reported} tokens"

    def get_queryset(self, request: HttpRequest) -> QuerySet[InvoiceLine]:
        return super().get_queryset(request).select_related("invoice")


def _email_of(invoice: Invoice) -> InvoiceEmail | None:
    try:
        return invoice.email
    except InvoiceEmail.DoesNotExist:
        return None


def _delivery_table(record: Delivery | None, none: str) -> SafeString:
    """An e-mail's delivery, for its invoice's or credit note's page."""
    if record is None:
        return format_html("{}", none)
    rows = [
        ("state", record.get_state_display()),  # type: ignore[attr-defined]
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


def _money(invoice: Invoice, amount: Decimal) -> str:
    return format_money(amount, _pricing(invoice))


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "number_display", "customer", "period_display", "status", "currency", "tokens_display",
        "total_display", "paid_display", "balance_display", "discrepancies_display", "issued_at",
        "paid_at", "email_display",
    )  # fmt: skip
    list_filter = (
        PeriodFilter, "status", "currency", OverdueFilter, CustomerFilter, DiscrepancyFilter,
        HeldFilter,
    )  # fmt: skip
    search_fields = ("=number", "=customer__id", "customer__email", "customer__name")
    list_select_related = ("customer", "email")
    inlines = [InvoiceLineInline]
    actions = [
        "issue", "mark_paid", "void", "correct", "regenerate", "resend_email", "export_csv",
    ]  # fmt: skip
    readonly_fields = (
        "customer", "period", "period_start", "period_end", "status", "number_display",
        "currency", "tokens_display", "subtotal_display", "tax_total_display", "total_display",
        "tax_table", "snapshot_table", "legal_table", "discrepancies_display", "hold_reason",
        "generated_at", "issued_at", "paid_at", "voided_at", "payments_panel",
        "email_delivery", "documents",
    )  # fmt: skip
    exclude = (
        "snapshot", "taxes", "fingerprint", "legal", "number", "tokens", "subtotal", "tax_total",
        "total", "discrepancies",
    )  # fmt: skip
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

    @admin.display(description="tokens", ordering="tokens")
    def tokens_display(self, obj: Invoice) -> str:
        return format_tokens(obj.tokens, _pricing(obj))

    @admin.display(description="subtotal", ordering="subtotal")
    def subtotal_display(self, obj: Invoice) -> str:
        return _money(obj, obj.subtotal)

    @admin.display(description="tax", ordering="tax_total")
    def tax_total_display(self, obj: Invoice) -> str:
        return _money(obj, obj.tax_total)

    @admin.display(description="total", ordering="total")
    def total_display(self, obj: Invoice) -> str:
        return _money(obj, obj.total)

    @admin.display(description="paid", ordering="paid_amount")
    def paid_display(self, obj: Invoice) -> str:
        return _money(obj, payment_selectors.paid_of(obj))

    @admin.display(description="balance", ordering="balance_amount")
    def balance_display(self, obj: Invoice) -> str:
        return _money(obj, payment_selectors.balance_of(obj))

    @admin.display(description="payments")
    def payments_panel(self, obj: Invoice) -> SafeString:
        return panels.invoice_payments(obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invoice]:
        return payment_selectors.with_paid(super().get_queryset(request))

    @admin.display(description="discrepancies", ordering="discrepancies")
    def discrepancies_display(self, obj: Invoice) -> str:
        # Only where there is one: "0" on every row reads like a warning.
        if not obj.discrepancies:
            return ""
        return f"⚠ {obj.discrepancies} line{'s' if obj.discrepancies > 1 else ''}"

    @admin.display(description="e-mail")
    def email_display(self, obj: Invoice) -> str:
        record = _email_of(obj)
        return record.get_state_display() if record else "—"

    @admin.display(description="e-mail to the customer")
    def email_delivery(self, obj: Invoice) -> SafeString:
        return _delivery_table(
            _email_of(obj), "none (drafts are not e-mailed; or e-mails were off)"
        )

    @admin.display(description="taxes")
    def tax_table(self, obj: Invoice) -> SafeString:
        rows = [
            (
                t["label"],
                format_percent(Decimal(t["rate"])),
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
            (
                "currency",
                f"{s.currency} (1 token = "
                f"{format_money(s.token_price, s, decimals=token_price_decimals(s.token_price))})",
            ),
            ("display", format_money(Decimal("1234.5"), s)),
            ("discounts", ", ".join(f"{n}: {format_discount(m)}" for n, m in s.discounts)),
            ("taxes", ", ".join(f"{label} {format_percent(r)}" for label, r in s.taxes)),
            ("taxes compound", "yes" if s.compound else "no"),
            ("billing exempt", "yes" if s.exempt else "no"),
        ]
        body = format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>", ((k, v or "none") for k, v in rows)
        )
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
        links = format_html(
            '<a href="{}">Download PDF</a> · <a href="{}">This customer\'s month so far</a>',
            pdf,
            preview,
        )
        if not obj.number:  # a draft has no number for an e-invoice
            return links
        return format_html(
            '{} · E-invoice: <a href="{}">Factur-X PDF</a> · <a href="{}">UBL XML</a>',
            links,
            reverse("admin:usage_invoice_facturx", args=[obj.pk]),
            reverse("admin:usage_invoice_ubl", args=[obj.pk]),
        )

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="usage_invoice_pdf",
            ),
            path(
                "<int:pk>/facturx/",
                self.admin_site.admin_view(self.facturx_view),
                name="usage_invoice_facturx",
            ),
            path(
                "<int:pk>/ubl/",
                self.admin_site.admin_view(self.ubl_view),
                name="usage_invoice_ubl",
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
        response = HttpResponse(documents.invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_filename(invoice)}.pdf"'
        return response

    def facturx_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return _einvoice_view(
            self, request, pk, documents.facturx_document, "application/pdf", "-facturx.pdf"
        )

    def ubl_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return _einvoice_view(
            self, request, pk, documents.ubl_document, "application/xml", "-ubl.xml"
        )

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
        response.context_data["totals"] = selectors.invoice_totals(  # type: ignore[attr-defined]
            queryset
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
            except (invoice_states.InvoiceStateError, CloseError) as exc:
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

    def has_credit_permission(self, request: HttpRequest) -> bool:
        """Voiding and correcting issue a credit note: they need its add permission."""
        return request.user.has_perm(f"{CreditNote._meta.app_label}.add_creditnote")

    def _credit(
        self,
        request: HttpRequest,
        queryset: QuerySet[Invoice],
        *,
        title: str,
        explanation: str,
        verb: str,
        change: Any,
    ) -> HttpResponse | None:
        """Ask for the reason (printed on each credit note), then act on each invoice."""
        reason = request.POST.get("reason", "").strip()
        if request.POST.get("confirm") == "yes" and reason:
            self._each(request, queryset, verb, lambda i: change(i.pk, reason[:500]))
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "explanation": explanation,
            "invoices": queryset.select_related("customer"),
            "action": request.POST.get("action", ""),
            "reason": reason,
            "error": "A reason is required." if request.POST.get("confirm") == "yes" else "",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/usage/invoice/credit.html", context)

    @admin.action(description="Void selected (issues a credit note)", permissions=["credit"])
    def void(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        return self._credit(
            request,
            queryset,
            title="Void and credit",
            explanation="Each issued invoice keeps its number, becomes void and is credited "
            "in full by a new credit note. Paid invoices and drafts are skipped.",
            verb="Voided",
            change=lambda pk, reason: invoice_states.void_invoice(invoice_id=pk, reason=reason),
        )

    @admin.action(
        description="Correct selected (credit note and a new draft)", permissions=["credit"]
    )
    def correct(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        return self._credit(
            request,
            queryset,
            title="Credit and re-draft",
            explanation="Each issued invoice is voided and credited in full by a new credit "
            "note, and a new draft for the same customer and period is built from the stored "
            "usage and today's prices, to review and issue.",
            verb="Corrected",
            change=lambda pk, reason: invoice_states.correct_invoice(invoice_id=pk, reason=reason),
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


def _einvoice_view(
    model_admin: "admin.ModelAdmin[Any]",
    request: HttpRequest,
    pk: int,
    make: Any,
    content_type: str,
    suffix: str,
) -> HttpResponse:
    """An invoice's or a credit note's e-invoice as a download, for staff who may view it;
    one EN 16931 finds incomplete goes back to its page with what to set."""
    if not model_admin.has_view_permission(request):
        return HttpResponse(status=403)
    model = model_admin.model
    document = get_object_or_404(model.objects.select_related(*_CUSTOMER_OF[model]), pk=pk)
    try:
        body = make(document)
    except EInvoiceError as exc:
        model_admin.message_user(request, f"No e-invoice: {exc}.", messages.ERROR)
        return redirect(f"admin:usage_{model._meta.model_name}_change", pk)
    name = credit_note_filename(document) if model is CreditNote else invoice_filename(document)
    return documents.attachment(body, content_type, f"{name}{suffix}")


_CUSTOMER_OF: dict[type[Any], tuple[str, ...]] = {
    Invoice: ("customer",),
    CreditNote: ("invoice", "invoice__customer"),
}


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Credit notes are issued by voiding or correcting an invoice, never by hand."""

    list_display = (
        "number_display", "invoice", "customer", "kind", "total_display", "issued_at", "reason",
    )  # fmt: skip
    list_filter = ("kind", "currency")
    search_fields = ("=number", "=invoice__number", "=invoice__customer__id", "reason")
    list_select_related = ("invoice", "invoice__customer")
    readonly_fields = (
        "number_display", "invoice", "kind", "reason", "issued_at", "currency",
        "tokens_display", "subtotal_display", "tax_total_display", "total_display", "document",
        "email_delivery", "refunds",
    )  # fmt: skip
    exclude = ("number", "taxes", "lines", "legal", "tokens", "subtotal", "tax_total", "total")
    actions = ["export_csv", "send_email"]

    def has_email_permission(self, request: HttpRequest) -> bool:
        # Whoever may e-mail invoices (the invoices' own action) may e-mail their credit notes.
        return request.user.has_perm("usage.change_invoice")

    @admin.action(description="E-mail selected to their customers (again)", permissions=["email"])
    def send_email(self, request: HttpRequest, queryset: QuerySet[CreditNote]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        queued = emails.resend_credit_notes(credit_note_ids=ids)
        self.message_user(request, f"Queued {queued} of {len(ids)} e-mail(s).")

    @admin.display(description="e-mail to the customer")
    def email_delivery(self, obj: CreditNote) -> SafeString:
        try:
            record = obj.email
        except CreditNoteEmail.DoesNotExist:
            record = None
        return _delivery_table(
            record, "none (its invoice had not been e-mailed, or e-mails were off)"
        )

    @admin.display(description="number", ordering="number")
    def number_display(self, obj: CreditNote) -> str:
        return obj.display_number

    @admin.display(description="customer", ordering="invoice__customer")
    def customer(self, obj: CreditNote) -> str:
        return str(obj.invoice.customer)

    @admin.display(description="tokens", ordering="tokens")
    def tokens_display(self, obj: CreditNote) -> str:
        return format_tokens(obj.tokens, _pricing(obj.invoice))

    @admin.display(description="subtotal", ordering="subtotal")
    def subtotal_display(self, obj: CreditNote) -> str:
        return _money(obj.invoice, obj.subtotal)

    @admin.display(description="tax", ordering="tax_total")
    def tax_total_display(self, obj: CreditNote) -> str:
        return _money(obj.invoice, obj.tax_total)

    @admin.display(description="total", ordering="total")
    def total_display(self, obj: CreditNote) -> str:
        return _money(obj.invoice, obj.total)

    @admin.display(description="refunds")
    def refunds(self, obj: CreditNote) -> SafeString:
        return panels.credit_note_refunds(obj)

    @admin.display(description="documents")
    def document(self, obj: CreditNote) -> SafeString:
        return format_html(
            '<a href="{}">Download PDF</a> · E-invoice: <a href="{}">Factur-X PDF</a>'
            ' · <a href="{}">UBL XML</a>',
            reverse("admin:usage_creditnote_pdf", args=[obj.pk]),
            reverse("admin:usage_creditnote_facturx", args=[obj.pk]),
            reverse("admin:usage_creditnote_ubl", args=[obj.pk]),
        )

    def get_urls(self) -> list[Any]:
        views = {"pdf": self.pdf_view, "facturx": self.facturx_view, "ubl": self.ubl_view}
        extra = [
            path(
                f"<int:pk>/{name}/",
                self.admin_site.admin_view(view),
                name=f"usage_creditnote_{name}",
            )
            for name, view in views.items()
        ]
        return extra + super().get_urls()

    def facturx_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return _einvoice_view(
            self,
            request,
            pk,
            documents.credit_note_facturx_document,
            "application/pdf",
            "-facturx.pdf",
        )

    def ubl_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return _einvoice_view(
            self, request, pk, documents.credit_note_ubl_document, "application/xml", "-ubl.xml"
        )

    def pdf_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        note = get_object_or_404(CreditNote.objects.select_related("invoice"), pk=pk)
        return credit_note_pdf_response(note)

    @admin.action(description="Export selected as CSV (one row per line)", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[CreditNote]) -> HttpResponse:
        notes = queryset.select_related("invoice", "invoice__customer").order_by("number")
        response = HttpResponse(credit_notes_csv(notes), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="credit-notes.csv"'
        return response


class OrphanFilter(YesNoFilter):
    title = "customer known"
    parameter_name = "orphan"
    labels = ("Orphans (unknown billing user)", "Known customers")

    def split(self, queryset: QuerySet[Any], yes: bool) -> QuerySet[Any]:
        return queryset.filter(customer__isnull=yes)


class UnknownKindFilter(YesNoFilter):
    title = "item kind known"
    parameter_name = "unknown_kind"
    labels = ("Unknown kinds (hold the invoice)", "Known kinds")

    def split(self, queryset: QuerySet[Any], yes: bool) -> QuerySet[Any]:
        known = Q(item__in=UsageItemKind.values)
        return queryset.exclude(known) if yes else queryset.filter(known)


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Raw usage as SolusIO reported it; orphans are the rows no customer claims, and rows
    of a kind the bridge cannot price (kept as SolusIO wrote it) hold their invoice."""

    list_display = (
        "period", "billing_user_id", "customer", "server_name", "item", "plan_name", "hours",
        "per_hour", "per_month", "backup_percent", "reported", "started_at", "ended_at",
    )  # fmt: skip
    list_filter = (OrphanFilter, UnknownKindFilter, PeriodFilter, "item")
    search_fields = ("=billing_user_id", "=server_id", "server_name", "server_uuid")
    list_select_related = ("customer",)

    # Usage has no currency yet (an orphan has no customer): tokens grouped with commas.
    @admin.display(description="tokens / hour", ordering="tokens_per_hour")
    def per_hour(self, obj: UsageRecord) -> str:
        return format_tokens(obj.tokens_per_hour)

    @admin.display(description="tokens / month", ordering="tokens_per_month")
    def per_month(self, obj: UsageRecord) -> str:
        return format_tokens(obj.tokens_per_month)

    @admin.display(description="backup price", ordering="backup_price")
    def backup_percent(self, obj: UsageRecord) -> str | None:
        return None if obj.backup_price is None else format_percent(obj.backup_price)

    @admin.display(description="SolusIO's tokens", ordering="reported_tokens")
    def reported(self, obj: UsageRecord) -> str | None:
        return None if obj.reported_tokens is None else format_tokens(obj.reported_tokens)

    keep_permissions = ("delete",)


@admin.register(UsagePull)
class UsagePullAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "period", "source", "rows", "started_at", "completed_at", "closed_at", "fallback_reason",
    )  # fmt: skip

    keep_permissions = ("delete",)


class CloseShardInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CloseShard
    # The counts of drafts created, updated and unchanged are the run's, summed.
    fields = (
        "stage", "index", "part", "state", "attempts", "worker", "rows", "built", "finished_at",
        "error",
    )  # fmt: skip
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[CloseShard]:
        return super().get_queryset(request).select_related("run")  # `part` reads its source

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The shards are part of their run: whoever may view the run sees them.
        return request.user.has_perm("usage.view_closerun")


@admin.register(CloseRun)
class CloseRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Cycle closes and how far they got: written by the close (beat, `close_cycle`), read
    here; each shard's worker and, for a failed one, its error."""

    list_display = (
        "run", "month", "state", "progress_bar", "shards", "built_display", "issued", "held",
        "started_at", "finished_at",
    )  # fmt: skip
    list_filter = ("state", PeriodFilter, "source")
    readonly_fields = (
        "month", "customer", "pull", "auto_issue", "inline", "state", "progress_bar", "source",
        "fallback_reason", "started_at", "finished_at", "stage_host", "stage_attempts", "rows",
        "orphans", "customers", "built_display", "shards", "created", "updated", "unchanged",
        "frozen", "removed", "issued", "held", "error", "seconds",
    )  # fmt: skip
    fields = readonly_fields
    inlines = [CloseShardInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CloseRun]:
        return workflow.runs()

    @admin.display(description="run", ordering="id")
    def run(self, obj: CloseRun) -> str:
        return f"#{obj.pk}"

    @admin.display(description="period", ordering="period")
    def month(self, obj: CloseRun) -> str:
        return f"{obj.period:%Y-%m}"

    @admin.display(description="progress")
    def progress_bar(self, obj: CloseRun) -> SafeString:
        percent = workflow.percent_done(obj)
        return format_html('<progress max="100" value="{}"></progress> {} %', percent, percent)

    @admin.display(description="shards done")
    def shards(self, obj: CloseRun) -> str:
        if obj.state == CloseRunState.PULLING:
            done, total = obj.pull_shards_done, obj.pull_shards  # type: ignore[attr-defined]
            return f"pull {done:,} / {total:,}"
        return f"{obj.shards_done:,} / {obj.shards_total:,}"  # type: ignore[attr-defined]

    @admin.display(description="customers built")
    def built_display(self, obj: CloseRun) -> str:
        return f"{obj.built:,} / {obj.customers:,}"  # type: ignore[attr-defined]


@admin.register(BillingSettings)
class BillingSettingsAdmin(SingletonModelAdmin):
    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        from payments import stripe_pay  # payments builds on usage; import late

        # Nothing shows online payment while Stripe is off (README, "Online payment").
        return () if stripe_pay.enabled() else ("auto_collect",)


@admin.register(DunningEvent)
class DunningEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "customer", "action", "invoice", "reason")
    list_filter = ("action",)
    search_fields = ("=customer__id", "customer__email")
    list_select_related = ("customer", "invoice")

    keep_permissions = ("delete",)


class ServerFilter(IdFilter):
    """?server=<SolusIO server id>: one server's intervals."""

    title = "server"
    parameter_name = "server"
    field = "server_id"


@admin.register(ObservedInterval)
class ObservedIntervalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Observed metering: each server's states as the polls of /servers saw them, one row
    per change (read-only: only the poll writes them)."""

    list_display = (
        "server_name", "server_id", "customer", "plan_name", "status", "backups_enabled",
        "additional_ips", "started_at", "ended_at",
    )  # fmt: skip
    list_filter = (CustomerFilter, ServerFilter, "status", "backups_enabled")
    search_fields = ("=server_id", "server_name", "server_uuid")
    list_select_related = ("customer",)
    date_hierarchy = "started_at"


@admin.register(ObservationPoll)
class ObservationPollAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "completed_at", "servers", "opened", "ended", "error")

    keep_permissions = ("delete",)


@admin.register(UsageSourceGap)
class UsageSourceGapAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Servers (or their paid backups) one usage source billed and the other never saw
    (USAGE_SOURCE=both)."""

    list_display = ("period", "server_name", "server_id", "item", "customer", "seen_by", "hours")
    list_filter = (PeriodFilter, "seen_by", "item", CustomerFilter)
    search_fields = ("=server_id", "server_name")
    list_select_related = ("customer",)


OBSERVED_VIEW_PERMISSION = "usage.view_observedinterval"


def observed_servers_panel(customer_id: int) -> SafeString:
    """The customer's servers as last observed, and a link to all their intervals (for the
    customer's admin page, shown to staff who may view observed intervals)."""
    servers = ObservedInterval.objects.filter(
        customer_id=customer_id, ended_at__isnull=True
    ).order_by("server_id")[:50]
    url = reverse("admin:usage_observedinterval_changelist") + f"?customer={customer_id}"
    return render_to_string(
        "admin/usage/observedinterval/customer_panel.html",
        {"servers": servers, "intervals_url": url},
    )
