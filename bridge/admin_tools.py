"""Admin building blocks the apps share: read-only rows, one-row settings, a country filter."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse


class ReadOnlyAdminMixin:
    """Rows the daemon writes and staff only read: nobody adds or edits them by hand.

    `keep_permissions` names the model permissions that still apply: "delete" to let staff
    clear rows, "change" where admin actions (which need it) are the only way to edit."""

    keep_permissions: tuple[str, ...] = ()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return "change" in self.keep_permissions and super().has_change_permission(  # type: ignore[misc]
            request, obj
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return "delete" in self.keep_permissions and super().has_delete_permission(  # type: ignore[misc]
            request, obj
        )

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        # "change" kept for the actions still shows Django's save buttons; they would save
        # nothing, so the page offers none.
        context.update(show_save=False, show_save_and_continue=False)
        context.update(show_save_and_add_another=False, show_save_as_new=False)
        return super().render_change_form(request, context, *args, **kwargs)  # type: ignore[misc]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # A form of read-only fields would write the row back as it was read, over whatever
        # changed since (a payment marking an invoice paid): refused, and nothing logged.
        if request.method == "POST":
            raise PermissionDenied("These rows change only through the admin actions.")
        return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]


class SingletonModelAdmin(admin.ModelAdmin):
    """For a bridge.models.SingletonModel: no list, no add, no delete; staff land on the
    one row's form."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not self.model._default_manager.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        row = self.model.load()  # type: ignore[attr-defined]
        opts = self.model._meta
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk])
        )


class CountryListFilter(admin.SimpleListFilter):
    """Country codes in use, with the blank value named (the stock filter shows it empty)."""

    title = "country"
    parameter_name = "country"
    blank_label = "(none)"
    blank_value = "-"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        codes = (
            model_admin.model.objects.order_by("country")
            .values_list("country", flat=True)
            .distinct()
        )
        return [(code or self.blank_value, code or self.blank_label) for code in codes]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(country="" if value == self.blank_value else value)
