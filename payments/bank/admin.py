"""Bank statements in the admin: upload on the statements' list (payments.add_bankstatement),
the entries with their state, reason and suggested invoices, and staff's choices for an
unmatched entry: assign it to an invoice, match again, or ignore it (change_bankentry)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html_join

from payments.bank import services
from payments.models import BankEntry, BankStatement, EntryState, StatementFormat
from usage.models import Invoice, InvoiceStatus


def plain(amount: Decimal, currency: str) -> str:
    """An exact amount as the bank booked it ("30.00 USD"): nothing rounded, only the
    zeros beyond the cents that the 4-place column adds are left out."""
    cents = amount.quantize(Decimal("0.01"))
    return f"{cents if cents == amount else amount.normalize():f}\u00a0{currency}"


class UploadForm(forms.Form):
    file = forms.FileField(help_text="ISO 20022 camt.053 XML, or CSV (see the README).")
    format = forms.ChoiceField(
        choices=[("", "Detect (XML is camt.053)"), *StatementFormat.choices], required=False
    )
    account = forms.CharField(
        required=False, max_length=64, help_text="IBAN of a CSV statement (camt.053 names it)."
    )


@admin.register(BankStatement)
class BankStatementAdmin(admin.ModelAdmin):
    change_list_template = "admin/payments/bankstatement/change_list.html"
    list_display = [
        "imported_at", "filename", "format", "account", "entries", "matched", "unmatched",
        "duplicates", "skipped", "imported_by",
    ]  # fmt: skip
    list_filter = ["format"]
    readonly_fields = [f.name for f in BankStatement._meta.fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a statement is what the bank said: read-only

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {"upload_form": UploadForm() if self.has_add_permission(request) else None}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """The upload: the file is imported and matched at once."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                summary = services.import_statement(
                    upload.read(),
                    filename=upload.name or "",
                    format=form.cleaned_data["format"] or None,
                    account=form.cleaned_data["account"],
                    user=request.user,
                )
            except services.StatementError as exc:
                form.add_error("file", str(exc))
            else:
                level = messages.WARNING if summary.already_imported else messages.SUCCESS
                self.message_user(request, f"Imported {upload.name}: {summary}", level)
                target = reverse("admin:payments_bankentry_changelist")
                query = f"?statement__id__exact={summary.statement}"
                if summary.unmatched:
                    query += f"&state__exact={EntryState.UNMATCHED}"
                return HttpResponseRedirect(target + query)
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a bank statement",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/payments/bankstatement/upload.html", context)


class AssignForm(forms.Form):
    invoice = forms.CharField(
        required=False,
        max_length=20,
        help_text="Or type an invoice number (INV-000123 or 123).",
    )


@admin.register(BankEntry)
class BankEntryAdmin(admin.ModelAdmin):
    list_display = ["booked_on", "money", "counterparty", "text", "state", "reason", "suggested"]
    list_filter = ["state", "currency", "statement"]
    search_fields = ["text", "counterparty", "structured_reference", "external_id"]
    list_select_related = ["payment"]
    readonly_fields = [f.name for f in BankEntry._meta.fields] + ["suggested"]
    actions = ["assign_to_invoice", "match_again", "mark_ignored"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # entries come from statements

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.readonly_fields

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        """The page's suggested invoices in one query, kept on its entries."""
        changelist = super().get_changelist_instance(request)
        entries = list(changelist.result_list)
        wanted = {pk for entry in entries for pk in entry.suggestions}
        invoices = Invoice.objects.select_related("customer").in_bulk(wanted)
        for entry in entries:
            entry.suggested_invoices = [invoices[pk] for pk in entry.suggestions if pk in invoices]
        return changelist

    @admin.display(description="Amount", ordering="amount")
    def money(self, entry: BankEntry) -> str:
        return plain(entry.amount, entry.currency)

    @admin.display(description="Likely invoices")
    def suggested(self, entry: BankEntry) -> str:
        rows = getattr(entry, "suggested_invoices", None)
        if rows is None:  # the change page: one entry
            found = Invoice.objects.select_related("customer").in_bulk(entry.suggestions)
            rows = [found[pk] for pk in entry.suggestions if pk in found]
        if not rows:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> ({}, {})',
            (
                (
                    reverse("admin:usage_invoice_change", args=[i.pk]),
                    i.display_number,
                    plain(i.total, i.currency),
                    i.customer.name or i.customer.email,
                )
                for i in rows
            ),
        )

    @admin.action(description="Assign selected entry to an invoice", permissions=["change"])
    def assign_to_invoice(
        self, request: HttpRequest, queryset: QuerySet[BankEntry]
    ) -> HttpResponse | None:
        entries = list(queryset.filter(state=EntryState.UNMATCHED)[:2])
        if len(entries) != 1:
            self.message_user(request, "Select exactly one unmatched entry.", messages.WARNING)
            return None
        entry = entries[0]
        form = AssignForm(request.POST if request.POST.get("confirm") == "yes" else None)
        error = ""
        if form.is_bound and form.is_valid():
            invoice = self._chosen(request.POST.get("suggestion", ""), form.cleaned_data["invoice"])
            if invoice is None:
                error = "Choose one of the invoices or type an issued invoice's number."
            else:
                try:
                    recorded = services.assign(
                        entry_id=entry.pk, invoice_id=invoice.pk, user=request.user
                    )
                except services.services.PaymentError as exc:
                    error = str(exc)
                else:
                    paid = f"; paid {len(recorded.settled)} invoice(s)" if recorded.settled else ""
                    self.message_user(
                        request,
                        f"Recorded the transfer of {plain(entry.amount, entry.currency)} on "
                        f"{invoice.display_number}{paid}.",
                    )
                    return None
        suggestions = Invoice.objects.select_related("customer").in_bulk(entry.suggestions)
        context = {
            **self.admin_site.each_context(request),
            "title": "Assign a bank transfer to an invoice",
            "entry": entry,
            "amount": plain(entry.amount, entry.currency),
            "suggestions": [
                (invoice, plain(invoice.total, invoice.currency))
                for invoice in (suggestions[pk] for pk in entry.suggestions if pk in suggestions)
            ],
            "form": form,
            "error": error,
            "action": request.POST.get("action", ""),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/payments/bankentry/assign.html", context)

    @staticmethod
    def _chosen(suggestion: str, typed: str) -> Invoice | None:
        wanted = Invoice.objects.filter(status__in=[InvoiceStatus.ISSUED, InvoiceStatus.PAID])
        if suggestion.isdigit():
            return wanted.filter(pk=int(suggestion)).first()
        digits = typed.upper().removeprefix("INV").lstrip("- ")
        return wanted.filter(number=int(digits)).first() if digits.isdigit() else None

    @admin.action(description="Match selected again (after new invoices)", permissions=["change"])
    def match_again(self, request: HttpRequest, queryset: QuerySet[BankEntry]) -> None:
        ids = list(queryset.filter(state=EntryState.UNMATCHED).values_list("id", flat=True))
        result = services.match_entries(ids, user=request.user)
        self.message_user(
            request,
            f"Matched {result.matched}, still unmatched {result.unmatched}; "
            f"{result.invoices_paid} invoice(s) paid.",
        )

    @admin.action(
        description="Mark selected as ignored (not a customer's payment)", permissions=["change"]
    )
    def mark_ignored(self, request: HttpRequest, queryset: QuerySet[BankEntry]) -> None:
        changed = services.ignore(entry_ids=queryset.values_list("id", flat=True))
        self.message_user(
            request, f"Ignored {changed} unmatched entr{'y' if changed == 1 else 'ies'}."
        )
