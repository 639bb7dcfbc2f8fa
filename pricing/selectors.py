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
        where |= Q(country=country.upper())
    return taxes_applying(
        list(TaxRule.objects.filter(where).order_by("order", "id")), country, region
    )


def taxes_applying(rules: list[TaxRule], country: str, region: str) -> list[TaxRule]:
    """Of `rules` (in order), those for everywhere, for the whole country and for the
    region. Regions compare case-insensitively by Unicode case folding (" london" is
    "London", "Straße" is "STRASSE"), in Python so that every path agrees whatever the
    database's collation."""
    country = country.upper()
    region = region.strip().casefold()
    return [
        r
        for r in rules
        if r.country == ""
        or (
            country != ""
            and r.country == country
            and (r.region == "" or (region != "" and r.region.strip().casefold() == region))
        )
    ]


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


@dataclass(frozen=True)
class ReferenceData:
    """Everything pricing reads that is not the customer's own row: small tables, loaded
    whole so that answering a customer takes one query (see reference_data)."""

    currencies: dict[str, Currency]  # by code, their primary key
    discounts: dict[int, Discount]
    tax_rules: list[TaxRule]  # in (order, id) order
    compound: bool


def reference_data() -> ReferenceData:
    """Currencies, discounts, tax rules and the compound setting. Four queries."""
    return ReferenceData(
        currencies={c.pk: c for c in Currency.objects.all()},
        discounts={d.pk: d for d in Discount.objects.all()},
        tax_rules=list(TaxRule.objects.order_by("order", "id")),
        compound=_taxes_compound(),
    )


def _taxes_compound() -> bool:
    # Read without creating the settings row: creating it would bump the generation.
    value = PricingSettings.objects.filter(pk=1).values_list("taxes_compound", flat=True).first()
    if value is None:
        return bool(PricingSettings._meta.get_field("taxes_compound").default)
    return value


def _pricing(
    currency: Currency,
    discounts: list[Discount],
    taxes: list[TaxRule],
    compound: bool,
    exempt: bool,
    now: datetime,
) -> TokenPricing:
    active, changes_at = discounts_in_force(sorted(discounts, key=lambda d: (d.name, d.id)), now)
    base = currency.token_price
    return TokenPricing(
        currency=currency,
        base_token_unit_cost=base,
        user_token_unit_cost=calc.user_token_unit_cost(
            base,
            [d.multiplier for d in active],
            [t.rate for t in taxes],
            compound,
            exempt=exempt,
        ),
        discounts=active,
        taxes=taxes,
        compound=compound,
        changes_at=changes_at,
    )


def token_pricing(
    customer_id: int, now: datetime, reference: ReferenceData | None = None
) -> TokenPricing | None:
    """Pricing of one customer at `now`; None when there is no such customer.

    With `reference` (the caller keeps it for as long as the pricing generation it was
    loaded under is current) one query; without, four.
    """
    if reference is not None:
        rows = list(
            Customer.objects.filter(pk=customer_id).values_list(
                "currency_id", "country", "region", "billing_exempt", "discounts"
            )
        )
        if not rows:
            return None
        currency_id, country, region, exempt, _ = rows[0]
        currency = reference.currencies.get(currency_id)
        discounts = [reference.discounts.get(row[4]) for row in rows if row[4] is not None]
        if currency is not None and None not in discounts:
            return _pricing(
                currency,
                [d for d in discounts if d is not None],
                taxes_applying(reference.tax_rules, country, region),
                reference.compound,
                exempt,
                now,
            )
        # A row newer than the reference data (its change bumped the generation, so this
        # answer will not be served for long): answer from the tables themselves.
    customer = (
        Customer.objects.select_related("currency")
        .prefetch_related("discounts")
        .filter(pk=customer_id)
        .first()
    )
    if customer is None:
        return None
    return _pricing(
        customer.currency,
        list(customer.discounts.all()),
        tax_rules_for(customer.country, customer.region),
        PricingSettings.load().taxes_compound,
        customer.billing_exempt,
        now,
    )
