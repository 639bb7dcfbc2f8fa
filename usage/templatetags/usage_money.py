"""Money, tokens and rules in invoice pages, written by bridge.money's one display rule:
`{% money amount pricing %}`, `{% tokens count pricing %}`, `{{ rate|percent }}`,
`{{ multiplier|discount }}`, `{{ line.rule|rule_label }}`."""

from decimal import Decimal
from typing import Any

from django import template

from bridge import money as display
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
