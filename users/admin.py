"""Admin for billing staff: customers and the token pricing SolusIO will be told."""

from typing import Any

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from bridge.jsonnum import plain_decimal
from pricing import calc, pricebook
from pricing.admin import CountryListFilter
from pricing.selectors import token_pricing
from users.models import Customer

PREVIEW_TOKENS = 1_000


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "email",
        "name",
        "currency",
        "country",
        "region",
        "status",
        "billing_exempt",
    )
    list_display_links = ("id", "email")
    list_filter = ("status", "currency", CountryListFilter, "billing_exempt")
    list_select_related = ("currency",)
    search_fields = ("id__exact", "email", "name")
    filter_horizontal = ("discounts",)
    readonly_fields = ("token_pricing", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("email", "name", "status")}),
        ("Billing", {"fields": ("currency", "country", "region", "billing_exempt", "discounts")}),
    )

    def get_fieldsets(self, request: Any, obj: Customer | None = None) -> Any:
        if obj is None:
            return self.fieldsets
        return (
            *self.fieldsets,
            (
                "Token pricing (what GetTokenPricing answers now)",
                {"fields": ("token_pricing",)},
            ),
            ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
        )

    @admin.display(description="token pricing")
    def token_pricing(self, obj: Customer) -> SafeString | str:
        pricing = token_pricing(obj.pk, timezone.now())
        if pricing is None:
            return "—"
        cur = pricing.currency

        def cost_of(unit_cost: Any) -> str:
            return pricebook.format_money(
                calc.tokens_to_money(PREVIEW_TOKENS, unit_cost, cur.decimals), cur
            )

        discounts = format_html_join(
            "",
            "<li>{} — {} (× {})</li>",
            (
                (d.name, d.description or "no description", plain_decimal(d.multiplier))
                for d in pricing.discounts
            ),
        )
        taxes = format_html_join(
            "",
            "<li>{}: {} %</li>",
            ((t.label, plain_decimal(t.rate)) for t in pricing.taxes),
        )
        rows = [
            ("Base token cost", f"{plain_decimal(pricing.base_token_unit_cost)} {cur.code}"),
            (
                "Discounts in force",
                format_html("<ul>{}</ul>", discounts) if pricing.discounts else "none",
            ),
            (
                f"Taxes ({'compound' if pricing.compound else 'simple'})",
                format_html("<ul>{}</ul>", taxes) if pricing.taxes else "none",
            ),
            (
                "User token unit cost",
                f"{plain_decimal(pricing.user_token_unit_cost)} {cur.code}"
                + (" (billing-exempt)" if obj.billing_exempt else ""),
            ),
            (
                f"{pricebook.format_tokens(PREVIEW_TOKENS)} tokens cost the customer",
                f"{cost_of(pricing.user_token_unit_cost)} "
                f"(before discounts and taxes {cost_of(pricing.base_token_unit_cost)})",
            ),
        ]
        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )
