"""Admin for billing staff: customers and the token pricing SolusIO will be told."""

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from bridge import money
from bridge.admin_tools import CountryListFilter, ReadOnlyAdminMixin, SingletonModelAdmin
from payments import panels
from pricing import calc
from pricing.admin import CacheRefusalAdmin
from pricing.selectors import token_pricing
from solusio.errors import SolusIOError
from usage.admin import OBSERVED_VIEW_PERMISSION, observed_servers_panel
from users import passwords, reconcile, services, sso, sync
from users.models import (
    INVOICE_DETAIL_FIELDS,
    Customer,
    LimitGroup,
    LoginAudit,
    ReconcileRun,
    ReconcileRunState,
    SolusioAccount,
    SolusioDefaults,
    SyncRecord,
    SyncRecordState,
    default_language,
)
from users.selectors import LOG_IN_AS_CUSTOMER_PERMISSION, can_retry_sync, last_reconcile_run

PREVIEW_TOKENS = 1_000


class CustomerForm(ModelForm):
    """The admin's customer form; a language left out (a script posting the form as it was
    before languages) is the default one, as in the API and the importer."""

    # No Meta: the admin builds the form for its fieldsets on this base.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "language" in self.fields:
            self.fields["language"].required = False

    def clean_language(self) -> str:
        return str(self.cleaned_data.get("language") or default_language())


@admin.register(Customer)
class CustomerAdmin(CacheRefusalAdmin):
    form = CustomerForm
    list_display = (
        "id",
        "email",
        "name",
        "currency",
        "country",
        "region",
        "status",
        "billing_exempt",
        "limit_group",
        "sync_state",
        "sync_error",
    )
    list_display_links = ("id", "email")
    list_filter = ("status", "currency", CountryListFilter, "billing_exempt", "solusio__state")
    list_select_related = ("currency", "limit_group", "solusio")
    search_fields = ("id__exact", "email", "name")
    filter_horizontal = ("discounts",)
    readonly_fields = (
        "token_pricing",
        "sync_panel",
        "dunning_panel",
        "payments_panel",
        "observed_servers",
        "portal_login",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("email", "name", "status")}),
        ("Billing", {"fields": ("currency", "country", "region", "billing_exempt", "discounts")}),
        ("Invoice details", {"fields": (*INVOICE_DETAIL_FIELDS, "language")}),
        ("SolusIO", {"fields": ("limit_group",)}),
    )
    actions = ("log_in_as_customer", "resync", "retry_parked")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "limit_group":
            kwargs["queryset"] = LimitGroup.objects.filter(in_solusio=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # --- writes go through users.services, so SolusIO hears of them -------------------

    def save_form(self, request: HttpRequest, form: ModelForm, change: bool) -> Customer:
        unsaved = super().save_form(request, form, change)  # also readies form.save_m2m()
        if change:
            return unsaved
        # A new customer is made by the service (it also queues the SolusIO user), and the
        # row it saved becomes the form's instance: the discounts are saved onto it next
        # (save_related), and the log entry and redirect name it.
        fields = {
            name: form.cleaned_data[name]
            for name in services.UPDATABLE_FIELDS
            if name in form.cleaned_data
        }
        form.instance = services.create_customer(**fields)
        return form.instance

    def save_model(
        self, request: HttpRequest, obj: Customer, form: ModelForm, change: bool
    ) -> None:
        if not change:
            return  # saved by save_form
        changes = {
            name: form.cleaned_data[name]
            for name in services.UPDATABLE_FIELDS
            if name in form.changed_data
        }
        services.update_customer(customer=obj, changes=changes, reason="edited in admin")

    def delete_model(self, request: HttpRequest, obj: Customer) -> None:
        services.delete_customer(customer=obj, reason="deleted in admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        for customer in queryset:
            services.delete_customer(customer=customer, reason="deleted in admin")

    # --- sync state at a glance ----------------------------------------------------------

    @admin.display(description="SolusIO sync", ordering="solusio__state")
    def sync_state(self, obj: Customer) -> str:
        account = _account(obj)
        if account is None:
            return "—"
        label = account.get_state_display()
        if account.solusio_user_id:
            label += f" (user {account.solusio_user_id})"
        return label

    @admin.display(description="last sync error")
    def sync_error(self, obj: Customer) -> str:
        account = _account(obj)
        return (account.last_error[:120] if account else "") or "—"

    @admin.display(description="SolusIO sync")
    def sync_panel(self, obj: Customer) -> SafeString:
        records = SyncRecord.objects.filter(customer_id=obj.pk).order_by("-id")[:10]
        return render_to_string(
            "admin/users/customer/sync_panel.html",
            {"account": _account(obj), "records": records},
        )

    @admin.display(description="dunning")
    def dunning_panel(self, obj: Customer) -> SafeString:
        # Read-only, so a panel rather than an inline: an inline's formset would have to
        # travel with every save of the customer form.
        events = obj.dunning.select_related("invoice").order_by("-at", "-id")[:10]
        return render_to_string("admin/users/customer/dunning_panel.html", {"events": events})

    @admin.display(description="payments")
    def payments_panel(self, obj: Customer) -> SafeString:
        return panels.customer_payments(obj)

    @admin.display(description="observed servers")
    def observed_servers(self, obj: Customer) -> SafeString:
        return observed_servers_panel(obj.pk)

    # --- actions ---------------------------------------------------------------------

    @admin.action(
        description="Log in as customer (SolusIO control panel)",
        permissions=["log_in_as_customer"],
    )
    def log_in_as_customer(
        self, request: HttpRequest, queryset: QuerySet[Customer]
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one customer.", messages.WARNING)
            return None
        customer = queryset.get()
        try:
            url = sso.login_url(
                customer=customer,
                staff_user=request.user,
                remote_addr=request.META.get("REMOTE_ADDR"),
            )
        except sso.LoginRefused as refused:
            self.message_user(request, f"{customer}: {refused.message}", messages.ERROR)
            return None
        return HttpResponseRedirect(url)

    @admin.action(description="Sync to SolusIO again", permissions=["change"])
    def resync(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        for pk in queryset.values_list("pk", flat=True):
            services.resync_customer(customer_id=pk, reason=f"resync by {request.user}")
        self.message_user(request, f"Queued {queryset.count()} customers for sync.")

    @admin.action(description="Retry parked SolusIO changes", permissions=["retry_sync"])
    def retry_parked(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        count = sync.retry_parked(customer_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Retrying {count} parked changes.")

    def has_retry_sync_permission(self, request: HttpRequest) -> bool:
        return can_retry_sync(request.user)

    def has_log_in_as_customer_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(LOG_IN_AS_CUSTOMER_PERMISSION)

    def get_fieldsets(self, request: Any, obj: Customer | None = None) -> Any:
        if obj is None:
            return self.fieldsets
        return (
            *self.fieldsets,
            (
                "Token pricing (what GetTokenPricing answers now)",
                {"fields": ("token_pricing",)},
            ),
            ("Customer portal (/account/)", {"fields": ("portal_login",)}),
            ("SolusIO sync (last 10 changes)", {"fields": ("sync_panel",)}),
            *(
                [("Payments, balance and reminders", {"fields": ("payments_panel",)})]
                if request.user.has_perm(panels.VIEW_PAYMENT)
                else []
            ),
            ("Dunning (last 10 steps)", {"fields": ("dunning_panel",)}),
            *(
                [("Observed servers (polls of SolusIO)", {"fields": ("observed_servers",)})]
                if request.user.has_perm(OBSERVED_VIEW_PERMISSION)
                else []
            ),
            ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
        )

    # --- the customer's portal password -----------------------------------------------------

    @admin.display(description="portal login")
    def portal_login(self, obj: Customer) -> SafeString:
        user = obj.user
        return render_to_string(
            "admin/users/customer/portal_login.html",
            {
                "can_sign_in": user is not None and user.has_usable_password(),
                "last_login": user.last_login if user else None,
                "url": reverse("admin:users_customer_portal_password", args=[obj.pk]),
            },
        )

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.portal_password_view)
        return [
            path("<int:customer_id>/password/", view, name="users_customer_portal_password"),
            *super().get_urls(),
        ]

    def portal_password_view(self, request: HttpRequest, customer_id: int) -> HttpResponse:
        customer = self.get_object(request, str(customer_id))
        if customer is None:
            raise Http404(f"No customer {customer_id}.")
        if not self.has_change_permission(request, customer):
            raise PermissionDenied
        form = PortalPasswordForm(passwords.portal_user_for(customer), request.POST or None)
        if request.method == "POST" and form.is_valid():
            services.set_customer_password(
                customer_id=customer.pk, password=form.cleaned_data["new_password1"]
            )
            self.log_change(request, customer, "Set the portal password.")
            self.message_user(request, f"{customer} can now sign in at /account/.")
            return HttpResponseRedirect(reverse("admin:users_customer_change", args=[customer.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Set portal password: {customer}",
            "opts": self.opts,
            "original": customer,
            "form": form,
        }
        return TemplateResponse(request, "admin/users/customer/portal_password.html", context)

    @admin.display(description="token pricing")
    def token_pricing(self, obj: Customer) -> SafeString | str:
        pricing = token_pricing(obj.pk, timezone.now())
        if pricing is None:
            return "—"
        cur = pricing.currency

        def unit_cost(cost: Decimal) -> str:
            # Exact: every digit SolusIO is told, never rounded to the currency's cents.
            return money.format_money(cost, cur, decimals=money.token_price_decimals(cost))

        def cost_of(unit_cost: Any) -> str:
            return money.format_money(
                calc.tokens_to_money(PREVIEW_TOKENS, unit_cost, cur.decimals), cur, compact=True
            )

        return render_to_string(
            "admin/users/customer/token_pricing.html",
            {
                "pricing": pricing,
                "exempt": obj.billing_exempt,
                "base_unit_cost": unit_cost(pricing.base_token_unit_cost),
                "user_unit_cost": unit_cost(pricing.user_token_unit_cost),
                "discounts": [
                    (d.name, d.description, money.format_discount(d.multiplier))
                    for d in pricing.discounts
                ],
                "taxes": [(t.label, money.format_percent(t.rate)) for t in pricing.taxes],
                "preview_tokens": money.format_tokens(PREVIEW_TOKENS),
                "preview_cost": cost_of(pricing.user_token_unit_cost),
                "preview_base_cost": cost_of(pricing.base_token_unit_cost),
            },
        )


class PortalPasswordForm(SetPasswordForm):
    """Django's set-password form (AUTH_PASSWORD_VALIDATORS against the customer's login);
    saving goes through users.services instead of the form."""

    def save(self, commit: bool = True) -> Any:
        raise NotImplementedError("use users.services.set_customer_password")


def _account(obj: Customer) -> SolusioAccount | None:
    try:
        return obj.solusio
    except SolusioAccount.DoesNotExist:
        return None


class ReconcilePanelMixin(admin.ModelAdmin):
    """A changelist with "Reconcile now" and the last reconciliation's report on top."""

    change_list_template = "admin/users/reconcile_change_list.html"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The report lists SolusIO users' e-mails: only for staff who may read reports.
        report = last_reconcile_run() if request.user.has_perm("users.view_reconcilerun") else None
        context = {**(extra_context or {}), "last_reconcile": report}
        return super().changelist_view(request, extra_context=context)


@admin.register(SyncRecord)
class SyncRecordAdmin(ReadOnlyAdminMixin, ReconcilePanelMixin):
    """The outbox: what was (or is still to be) told to SolusIO, and why it failed."""

    list_display = (
        "id",
        "customer_id",
        "action",
        "reason",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "delivered_at",
    )
    list_filter = ("state", "action")
    search_fields = ("customer_id__exact", "last_error", "reason")
    actions = ("retry",)

    @admin.action(description="Retry the selected parked changes", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[SyncRecord]) -> None:
        ids = list(queryset.filter(state=SyncRecordState.PARKED).values_list("pk", flat=True))
        count = sync.retry_parked(record_ids=ids)
        self.message_user(request, f"Retrying {count} parked changes.")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return can_retry_sync(request.user)


@admin.register(LimitGroup)
class LimitGroupAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Mirrored from SolusIO (Step 5): read-only here; "Refresh from SolusIO" re-reads them."""

    list_display = (
        "id",
        "name",
        "vms",
        "running_vms",
        "additional_ips",
        "in_solusio",
        "is_default",
        "mirrored_at",
    )
    change_list_template = "admin/users/limitgroup/change_list.html"

    @staticmethod
    def _limit(limit: int, enabled: bool) -> str:
        return str(limit) if enabled else "unlimited"

    @admin.display(description="servers")
    def vms(self, obj: LimitGroup) -> str:
        return self._limit(obj.vms_limit, obj.vms_enabled)

    @admin.display(description="running servers")
    def running_vms(self, obj: LimitGroup) -> str:
        return self._limit(obj.running_vms_limit, obj.running_vms_enabled)

    @admin.display(description="additional IPs")
    def additional_ips(self, obj: LimitGroup) -> str:
        return self._limit(obj.additional_ips_limit, obj.additional_ips_enabled)

    @admin.display(description="default for new customers", boolean=True)
    def is_default(self, obj: LimitGroup) -> bool:
        return SolusioDefaults.load().default_limit_group_id == obj.pk

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(require_POST(self.mirror_view))
        return [path("mirror/", view, name="users_limitgroup_mirror"), *super().get_urls()]

    def mirror_view(self, request: HttpRequest) -> HttpResponse:
        # Refreshing writes the mirrored rows: "change", although staff edit none by hand.
        if not request.user.has_perm("users.change_limitgroup"):
            return HttpResponse("Refreshing limit groups needs permission.", status=403)
        try:
            groups = services.mirror_limit_groups()
        except SolusIOError as exc:
            self.message_user(request, f"SolusIO: {exc}", messages.ERROR)
        else:
            self.message_user(request, f"Mirrored {len(groups)} limit groups from SolusIO.")
        return HttpResponseRedirect(reverse("admin:users_limitgroup_changelist"))


@admin.register(SolusioDefaults)
class SolusioDefaultsAdmin(SingletonModelAdmin):
    """One row: the default limit group for new customers."""

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "default_limit_group":
            kwargs["queryset"] = LimitGroup.objects.filter(in_solusio=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(LoginAudit)
class LoginAuditAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Who opened which customer's control panel, and what happened (never the token)."""

    list_display = ("at", "customer_id", "staff_username", "outcome", "detail", "remote_addr")
    list_filter = ("outcome",)
    search_fields = ("customer_id__exact", "staff_username")


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadOnlyAdminMixin, ReconcilePanelMixin):
    """Every reconciliation's report; "Reconcile now" queues one (users.add_reconcilerun)."""

    list_display = ("id", "requested_at", "trigger", "fix", "state", "summary")
    list_filter = ("state", "fix")
    fields = (
        "requested_at",
        "started_at",
        "finished_at",
        "trigger",
        "fix",
        "state",
        "error",
        "counts_table",
        "report",
    )
    readonly_fields = fields

    keep_permissions = ("delete",)  # runs are made by "Reconcile now", beat and the command

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(require_POST(self.run_view))
        return [path("run/", view, name="users_reconcilerun_run"), *super().get_urls()]

    def run_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("users.add_reconcilerun"):
            return HttpResponse("Starting a reconciliation needs permission.", status=403)
        run, created = reconcile.request_run(fix=True, trigger=f"admin: {request.user}")
        if not created:
            self.message_user(
                request,
                f"A reconciliation is already {run.get_state_display().lower()} "
                f"(#{run.pk}, asked {run.requested_at:%Y-%m-%d %H:%M:%S} UTC).",
                messages.WARNING,
            )
        elif run.state == ReconcileRunState.FAILED:
            self.message_user(request, f"Reconciliation #{run.pk}: {run.error}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Reconciliation #{run.pk} queued; its report appears here when a worker "
                "has run it.",
            )
        back = request.POST.get("next") or ""
        if back not in _RECONCILE_PAGES:
            back = "admin:users_reconcilerun_changelist"
        return HttpResponseRedirect(reverse(back))

    @admin.display(description="found")
    def summary(self, obj: ReconcileRun) -> str:
        if not obj.counts:
            return obj.error[:120] or "—"
        return "; ".join(f"{label}: {value}" for label, value in obj.labelled_counts())

    @admin.display(description="counts")
    def counts_table(self, obj: ReconcileRun) -> SafeString | str:
        if not obj.counts:
            return "—"
        return render_to_string(
            "admin/users/reconcilerun/counts.html", {"counts": obj.labelled_counts()}
        )

    @admin.display(description="report")
    def report(self, obj: ReconcileRun) -> SafeString | str:
        if not obj.details:
            return "—"
        return render_to_string("admin/users/reconcilerun/report.html", {"lines": obj.details})


# Where "Reconcile now" may send staff back to.
_RECONCILE_PAGES = frozenset(
    {"admin:users_reconcilerun_changelist", "admin:users_syncrecord_changelist"}
)
