"""Reads that assemble a customer's token pricing (GetTokenPricing, DESIGN §3)."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q

from pricing import calc
from pricing.models import Currency, Discount, PricingSettings, TaxRule
from users.models import Customer


@dataclass(frozen=True)
class TokenPricing:
    currency: Currency
    base_token_unit_cost: Decimal
    user_token_unit_cost: Decimal
    discounts: list[Discount]
    taxes: list[TaxRule]
    compound: bool
    # The next instant a discount starts or stops applying: answers must not outlive it.
    changes_at: datetime | None

    def as_response(self) -> dict[str, object]:
        """The GetTokenPricing body; `multipler` is spelled as SolusIO reads it."""
        cur = self.currency
        return {
            "base_token_unit_cost": self.base_token_unit_cost,
            "user_token_unit_cost": self.user_token_unit_cost,
            "currency": {
                "code": cur.code,
                "display_prefix": cur.display_prefix,
                "display_suffix": cur.display_suffix,
                "decimals": cur.decimals,
                "thousands_separator": cur.thousands_separator,
                "decimals_separator": cur.decimals_separator,
            },
            "discounts": [
                {"name": d.name, "description": d.description, "multipler": d.multiplier}
                for d in self.discounts
            ],
            "taxes": {
                "compound": self.compound,
                "rates": [{"label": t.label, "rate": t.rate} for t in self.taxes],
            },
        }


def tax_rules_for(country: str, region: str) -> list[TaxRule]:
    """Rules for everywhere, for the whole country, and for the customer's region, in order."""
    where = Q(country="")
    if country:
        where |= Q(country=country.upper(), region="")
        if region:
            where |= Q(country=country.upper(), region__iexact=region.strip())
    return list(TaxRule.objects.filter(where).order_by("order", "id"))


def discounts_in_force(
    discounts: list[Discount], now: datetime
) -> tuple[list[Discount], datetime | None]:
    """The discounts valid at `now` (valid_from ≤ now < valid_until) and the next instant
    that set changes."""
    active: list[Discount] = []
    boundaries: list[datetime] = []
    for d in discounts:
        if (d.valid_from is None or d.valid_from <= now) and (
            d.valid_until is None or now < d.valid_until
        ):
            active.append(d)
        boundaries.extend(b for b in (d.valid_from, d.valid_until) if b is not None and b > now)
    return active, min(boundaries, default=None)


def token_pricing(customer_id: int, now: datetime) -> TokenPricing | None:
    """Pricing of one customer at `now`; None when there is no such customer. Three queries."""
    customer = (
        Customer.objects.select_related("currency")
        .prefetch_related("discounts")
        .filter(pk=customer_id)
        .first()
    )
    if customer is None:
        return None
    discounts, changes_at = discounts_in_force(
        sorted(customer.discounts.all(), key=lambda d: (d.name, d.id)), now
    )
    taxes = tax_rules_for(customer.country, customer.region)
    compound = PricingSettings.load().taxes_compound
    base = customer.currency.token_price
    return TokenPricing(
        currency=customer.currency,
        base_token_unit_cost=base,
        user_token_unit_cost=calc.user_token_unit_cost(
            base,
            [d.multiplier for d in discounts],
            [t.rate for t in taxes],
            compound,
            exempt=customer.billing_exempt,
        ),
        discounts=discounts,
        taxes=taxes,
        compound=compound,
        changes_at=changes_at,
    )
