"""`{% money amount pricing %}`: an amount as the customer's currency writes it."""

from decimal import Decimal

from django import template

from bridge.money import format_money
from usage.rules import PricingSnapshot

register = template.Library()


@register.simple_tag
def money(amount: Decimal, pricing: PricingSnapshot | dict) -> str:
    if isinstance(pricing, dict):  # an invoice's stored snapshot
        pricing = PricingSnapshot.from_json(pricing)
    return format_money(Decimal(amount), pricing)
