"""Money, tokens and rules in invoice pages, written by bridge.money's one display rule:
`{% money amount pricing %}`, `{% tokens count pricing %}`, `{{ rate|percent }}`,
`{{ multiplier|discount }}`, `{{ line.rule|rule_label }}`, and dates as invoices write them in
the active language: `{{ day|long_date }}` (29 November 2026, 29.11.2026),
`{{ month|month_year }}`."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django import template
from django.conf import settings
from django.utils import timezone

from bridge import money as display
from usage import legal
from usage.rules import PricingSnapshot, Rule

register = template.Library()


def _pricing(pricing: PricingSnapshot | dict[str, Any]) -> PricingSnapshot:
    if isinstance(pricing, dict):  # an invoice's stored snapshot
        return PricingSnapshot.from_json(pricing)
    return pricing


@register.simple_tag
def money(amount: Decimal, pricing: PricingSnapshot | dict[str, Any]) -> str:
    return display.format_money(Decimal(amount), _pricing(pricing))


@register.simple_tag
def tokens(count: int, pricing: PricingSnapshot | dict[str, Any]) -> str:
    return display.format_tokens(count, _pricing(pricing))


@register.filter
def percent(rate: Decimal) -> str:
    return display.format_percent(Decimal(rate))


@register.filter
def discount(multiplier: Decimal) -> str:
    return display.format_discount(Decimal(multiplier))


@register.filter
def rule_label(code: str) -> str:
    return Rule.label_of(str(code))


@register.filter
def long_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = timezone.localtime(value, ZoneInfo(settings.BILLING_TIMEZONE)).date()
    return legal.long_date(value)


@register.filter
def month_year(value: date | None) -> str:
    return legal.month_and_year(value) if value else ""


@register.filter
def invoice_status(status: str) -> str:
    return legal.status_label(status)
