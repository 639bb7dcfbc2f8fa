"""`{% money amount pricing %}`: an amount as the customer's currency writes it."""

from decimal import Decimal

from django import template

from usage.rules import PricingSnapshot, format_money

register = template.Library()


@register.simple_tag
def money(amount: Decimal, pricing: PricingSnapshot | dict) -> str:
    if isinstance(pricing, dict):  # an invoice's stored snapshot
        pricing = PricingSnapshot.from_json(pricing)
    return format_money(Decimal(amount), pricing)
