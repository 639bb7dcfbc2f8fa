"""Admin for billing staff: currencies, discounts, tax rules, pricing settings, plans.

Figures come from pricing.pricebook and pricing.calc, so the admin shows the same numbers
as `manage.py pricing_scheme` and the GetTokenPricing endpoint.
"""

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from bridge import money
from bridge.admin_tools import CountryListFilter, SingletonModelAdmin
from bridge.jsonnum import plain_decimal
from pricing import calc, plan_sync, pricebook
from pricing.models import Currency, Discount, Plan, PricingSettings, TaxRule
from pricing.pricebook import PlanPriceRow
from pricing.selectors import discounts_in_force
from solusio.errors import SolusIOError

PREVIEW_TOKENS = 10_000


@admin.register(Currency)
class CurrencyAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "token_price_display",
        "display_prefix",
        "display_suffix",
        "decimals",
        "preview",
    )
    search_fields = ("code",)
    fieldsets = (
        (None, {"fields": ("code", "token_price", "decimals")}),
        (
            "Display",
            {
                "fields": (
                    "display_prefix",
                    "display_suffix",
                    "thousands_separator",
                    "decimals_separator",
                )
            },
        ),
    )
    readonly_fields = ("conversion_scheme",)

    def get_readonly_fields(self, request: HttpRequest, obj: Currency | None = None) -> Any:
        # The code is the primary key: changing it would create a second currency.
        return (*self.readonly_fields, "code") if obj else self.readonly_fields

    def get_fieldsets(self, request: HttpRequest, obj: Currency | None = None) -> Any:
        if obj is None:
            return self.fieldsets
        return (
            *self.fieldsets,
            ("Conversion scheme (Step 1)", {"fields": ("conversion_scheme",)}),
        )

    @admin.display(description="token price", ordering="token_price")
    def token_price_display(self, obj: Currency) -> str:
        return plain_decimal(obj.token_price)

    @admin.display(description=f"{money.format_tokens(PREVIEW_TOKENS)} tokens")
    def preview(self, obj: Currency) -> str:
        return pricebook.format_conversion_price(
            pricebook.conversion_price(PREVIEW_TOKENS, obj), obj
        )

    @admin.display(description="price of tokens")
    def conversion_scheme(self, obj: Currency) -> SafeString:
        scheme = pricebook.build_conversion_scheme([obj])
        rows = [
            (
                money.format_tokens(row.tokens),
                pricebook.format_conversion_price(row.prices[0], obj),
            )
            for row in scheme.rows
        ]
        return render_to_string(
            "admin/pricing/currency/conversion_scheme.html", {"code": obj.code, "rows": rows}
        )


@admin.register(Discount)
class DiscountAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "description",
        "multiplier_display",
        "validity",
        "in_force_now",
        "customer_count",
    )
    search_fields = ("name", "description")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Discount]:
        return super().get_queryset(request).annotate(customer_count=Count("customers"))

    @admin.display(description="multiplier", ordering="multiplier")
    def multiplier_display(self, obj: Discount) -> str:
        return plain_decimal(obj.multiplier)

    @admin.display(description="validity", ordering="valid_from")
    def validity(self, obj: Discount) -> str:
        def when(instant: Any) -> str:
            return date_format(timezone.localtime(instant), "SHORT_DATETIME_FORMAT")

        if obj.valid_from and obj.valid_until:
            return f"{when(obj.valid_from)} – {when(obj.valid_until)}"
        if obj.valid_from:
            return f"from {when(obj.valid_from)}"
        if obj.valid_until:
            return f"until {when(obj.valid_until)}"
        return "always"

    @admin.display(description="in force now", boolean=True)
    def in_force_now(self, obj: Discount) -> bool:
        active, _ = discounts_in_force([obj], timezone.now())
        return bool(active)

    @admin.display(description="customers", ordering="customer_count")
    def customer_count(self, obj: Discount) -> int:
        return int(obj.customer_count)  # type: ignore[attr-defined]


@admin.register(TaxRule)
class TaxRuleAdmin(admin.ModelAdmin):
    list_display = ("label", "rate", "country", "region", "order")
    list_display_links = ("label",)
    list_editable = ("rate", "order")
    list_filter = (CountryListFilter,)
    search_fields = ("label", "country", "region")


@admin.register(PricingSettings)
class PricingSettingsAdmin(SingletonModelAdmin):
    pass


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "tokens_per_hour",
        "tokens_per_month",
        "aggregated_month",
        "suggested_monthly",
        "matches_suggestion",
        "solusio_prices",
        "agrees_with_solusio",
    )
    list_filter = ("in_solusio",)
    actions = ("push_prices",)
    change_list_template = "admin/pricing/plan/change_list.html"
    list_display_links = ("id", "name")
    search_fields = ("id__exact", "name")
    plan_fields = ("id", "name", "tokens_per_hour", "tokens_per_month")
    price_book_fields = (
        "aggregated_month",
        "aggregated_month_price",
        "suggested_monthly",
        "suggested_monthly_price",
        "monthly_price",
        "matches_suggestion",
    )
    solusio_fields = (
        "solusio_prices",
        "solusio_extras",
        "agrees_with_solusio",
        "in_solusio",
        "mirrored_at",
    )
    readonly_fields = (*price_book_fields, *solusio_fields)

    # --- SolusIO (Step 3): what it has, where it disagrees, push ----------------------

    @admin.display(description="SolusIO has (per hour / month)")
    def solusio_prices(self, obj: Plan) -> str:
        if obj.mirrored_at is None:
            return "not mirrored"
        if not obj.in_solusio:
            return "not in SolusIO"
        return f"{obj.solusio_tokens_per_hour} / {obj.solusio_tokens_per_month}"

    @admin.display(description="SolusIO's IP and backup prices")
    def solusio_extras(self, obj: Plan) -> str:
        """Mirrored only: IP lines bill SolusIO's IP prices, backups its percentage (R7)."""
        if obj.mirrored_at is None:
            return "not mirrored"
        ips = (
            f"additional IP {obj.solusio_ip_tokens_per_hour} / {obj.solusio_ip_tokens_per_month}"
            if obj.solusio_ip_tokens_per_hour is not None
            else "additional IP: not reported"
        )
        backups = (
            f"backups {money.format_percent(obj.solusio_backup_price)} of the runtime charge"
            if obj.solusio_backup_price is not None
            else "backups: not reported"
        )
        return f"{ips}; {backups}"

    @admin.display(description="SolusIO = price book", boolean=True)
    def agrees_with_solusio(self, obj: Plan) -> bool | None:
        return obj.agrees_with_solusio

    @admin.action(description="Push the price book's prices to SolusIO", permissions=["change"])
    def push_prices(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        try:
            pushed = plan_sync.push_plan_prices(
                plan_ids=list(queryset.values_list("pk", flat=True))
            )
        except SolusIOError as exc:
            self.message_user(request, f"SolusIO: {exc}", messages.ERROR)
            return
        self.message_user(request, f"Pushed the prices of {len(pushed)} plans to SolusIO.")

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(require_POST(self.mirror_view))
        return [path("mirror/", view, name="pricing_plan_mirror"), *super().get_urls()]

    def mirror_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("pricing.change_plan"):
            return HttpResponse(status=403)
        try:
            plans = plan_sync.mirror_plans()
        except SolusIOError as exc:
            self.message_user(request, f"SolusIO: {exc}", messages.ERROR)
        else:
            differ = plan_sync.disagreements()
            level = messages.WARNING if differ else messages.SUCCESS
            self.message_user(
                request,
                f"Mirrored {len(plans)} plans from SolusIO; {len(differ)} disagree with the "
                "price book.",
                level,
            )
        return HttpResponseRedirect(reverse("admin:pricing_plan_changelist"))

    def get_readonly_fields(self, request: HttpRequest, obj: Plan | None = None) -> Any:
        # The id is SolusIO's: set once when the plan is mirrored, never renumbered.
        return (*self.readonly_fields, "id") if obj else self.readonly_fields

    def get_fieldsets(self, request: HttpRequest, obj: Plan | None = None) -> Any:
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [(None, {"fields": self.plan_fields})]
        if obj is not None:
            currency = _price_row(obj)[1]
            title = f"Price book (Step 2) in {currency.code}" if currency else "Price book"
            fieldsets.append(
                (
                    title,
                    {
                        "fields": self.price_book_fields,
                        "description": "Aggregated month = tokens per hour × 24 hours × "
                        "31 days; the suggestion is its round monthly price.",
                    },
                )
            )
            fieldsets.append(("SolusIO (Step 3)", {"fields": self.solusio_fields}))
        return fieldsets

    # Token figures come straight from calc: they need no currency, so the changelist
    # runs no query for them.
    @admin.display(description="aggregated month (tokens)", ordering="tokens_per_hour")
    def aggregated_month(self, obj: Plan) -> str:
        return money.format_tokens(_aggregated(obj))

    @admin.display(description="suggested tokens per month", ordering="tokens_per_hour")
    def suggested_monthly(self, obj: Plan) -> str:
        return money.format_tokens(_suggested(obj))

    @admin.display(description="tokens per month = suggestion", boolean=True)
    def matches_suggestion(self, obj: Plan) -> bool:
        return obj.tokens_per_month == _suggested(obj)

    @admin.display(description="aggregated month price")
    def aggregated_month_price(self, obj: Plan) -> str:
        return _money(obj, "aggregated_month_price")

    @admin.display(description="suggested monthly price")
    def suggested_monthly_price(self, obj: Plan) -> str:
        return _money(obj, "suggested_monthly_price")

    @admin.display(description="price of tokens per month")
    def monthly_price(self, obj: Plan) -> str:
        return _money(obj, "monthly_price")


def _aggregated(obj: Plan) -> int:
    return calc.aggregated_month_tokens(obj.tokens_per_hour)


def _suggested(obj: Plan) -> int:
    return calc.suggested_monthly_tokens(_aggregated(obj))


def _price_row(obj: Plan) -> tuple[PlanPriceRow | None, Currency | None]:
    # Cached on the instance: the change page asks for several figures of one plan, and
    # each would otherwise look the default currency up again.
    cached = obj.__dict__.get("_admin_price_row")
    if cached is None:
        currency = pricebook.default_currency()
        row = pricebook.plan_price_row(obj, currency) if currency else None
        cached = obj.__dict__["_admin_price_row"] = (row, currency)
    return cached


def _money(obj: Plan, field: str) -> str:
    row, currency = _price_row(obj)
    if row is None or currency is None:
        return "— (add a currency to see prices)"
    return money.format_money(getattr(row, field), currency, compact=True)
