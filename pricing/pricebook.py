"""The price book (seed Steps 1 and 2): the token-to-currency conversion scheme and the
plans table, read from the database and built on pricing.calc.

Figures are Decimal and exact; rounding and display are bridge.money's (money half-up to the
currency's decimals). The renderings for people and machines live here too, so the
`pricing_scheme` command and the admin show the same numbers from the same code.
"""

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from bridge import money
from pricing import calc
from pricing.models import Currency, Plan

DEFAULT_CURRENCY_CODE = "USD"


class PriceBookError(ValueError):
    """The price book cannot be built (no currencies, unknown currency code)."""


@dataclass(frozen=True)
class ConversionRow:
    tokens: int
    # Aligned with ConversionScheme.currencies; exact (tokens × token price).
    prices: tuple[Decimal, ...]


@dataclass(frozen=True)
class ConversionScheme:
    currencies: tuple[Currency, ...]
    rows: tuple[ConversionRow, ...]


@dataclass(frozen=True)
class PlanPriceRow:
    plan_id: int
    name: str
    tokens_per_hour: int
    aggregated_month_tokens: int
    aggregated_month_price: Decimal
    suggested_monthly_tokens: int
    suggested_monthly_price: Decimal
    tokens_per_month: int
    monthly_price: Decimal
    matches_suggestion: bool


@dataclass(frozen=True)
class PriceBook:
    currency: Currency  # the currency of the plans table
    conversion: ConversionScheme
    plans: tuple[PlanPriceRow, ...]


# --- pure builders ---------------------------------------------------------------------


def conversion_price(tokens: int, currency: Currency) -> Decimal:
    """tokens × token price, exact, at the scheme's display digits.

    Rounding to token_price_decimals loses nothing: tokens are integers and those digits
    cover every decimal the price has. It only pads, so "0.00100" reads like the seed.
    """
    exact = tokens * currency.token_price
    return money.round_money(exact, money.token_price_decimals(currency.token_price))


def build_conversion_scheme(currencies: Sequence[Currency]) -> ConversionScheme:
    return ConversionScheme(
        currencies=tuple(currencies),
        rows=tuple(
            ConversionRow(
                tokens=tokens,
                prices=tuple(conversion_price(tokens, cur) for cur in currencies),
            )
            for tokens in calc.CONVERSION_SCHEME_TOKENS
        ),
    )


def plan_price_row(plan: Plan, currency: Currency) -> PlanPriceRow:
    aggregated = calc.aggregated_month_tokens(plan.tokens_per_hour)
    suggested = calc.suggested_monthly_tokens(aggregated)

    def price(tokens: int) -> Decimal:
        return calc.tokens_to_money(tokens, currency.token_price, currency.decimals)

    return PlanPriceRow(
        plan_id=plan.id,
        name=plan.name,
        tokens_per_hour=plan.tokens_per_hour,
        aggregated_month_tokens=aggregated,
        aggregated_month_price=price(aggregated),
        suggested_monthly_tokens=suggested,
        suggested_monthly_price=price(suggested),
        tokens_per_month=plan.tokens_per_month,
        monthly_price=price(plan.tokens_per_month),
        matches_suggestion=plan.tokens_per_month == suggested,
    )


# --- selectors -------------------------------------------------------------------------


def default_currency() -> Currency | None:
    """USD when it exists (the seed's reference currency), else the first by code."""
    currencies = list(Currency.objects.order_by("code"))
    usd = next((c for c in currencies if c.code == DEFAULT_CURRENCY_CODE), None)
    return usd or (currencies[0] if currencies else None)


def price_book(*, currency_code: str | None = None) -> PriceBook:
    """The conversion scheme over every currency (the chosen one first, then by code) and
    the plans table in the chosen currency (default: USD, else the first). Two queries."""
    currencies = list(Currency.objects.order_by("code"))
    if not currencies:
        raise PriceBookError("No currencies yet: add one (code and token price) first.")
    by_code = {c.code: c for c in currencies}
    if currency_code is None:
        code = DEFAULT_CURRENCY_CODE if DEFAULT_CURRENCY_CODE in by_code else currencies[0].code
    else:
        code = currency_code.strip().upper()
    chosen = by_code.get(code)
    if chosen is None:
        raise PriceBookError(
            f"Unknown currency {currency_code!r}; known: {', '.join(sorted(by_code))}."
        )
    ordered = [chosen, *(c for c in currencies if c is not chosen)]
    return PriceBook(
        currency=chosen,
        conversion=build_conversion_scheme(ordered),
        plans=tuple(plan_price_row(p, chosen) for p in Plan.objects.order_by("id")),
    )


# --- formatting --------------------------------------------------------------------------


def format_conversion_price(price: Decimal, currency: Currency) -> str:
    """A price in a column headed by its currency, with the token price's decimals."""
    decimals = money.token_price_decimals(currency.token_price)
    return money.format_money(price, currency, decimals=decimals, compact=True)


def _aligned(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 0) -> list[str]:
    """Columns two spaces apart; the first `left` columns (text) flush left, numbers right."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for cells in (headers, *rows):
        padded = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return lines


def render_table(book: PriceBook) -> str:
    cur = book.currency
    conversion = _aligned(
        ["Tokens", *(c.code for c in book.conversion.currencies)],
        [
            [
                money.format_tokens(row.tokens),
                *(
                    format_conversion_price(price, c)
                    for price, c in zip(row.prices, book.conversion.currencies, strict=True)
                ),
            ]
            for row in book.conversion.rows
        ],
    )
    lines = ["Conversion scheme: price of tokens in each currency", "", *conversion, ""]
    lines.append(
        f"Plans in {cur.code}: aggregated month = tokens/hour × 24 hours × 31 days, "
        "suggested = its round price"
    )
    lines.append("")
    if not book.plans:
        lines.append("(no plans)")
    else:
        lines.extend(
            _aligned(
                [
                    "ID",
                    "Plan",
                    "Tokens/hour",
                    "Aggregated/month",
                    "Aggregated price",
                    "Suggested/month",
                    "Suggested price",
                    "Tokens/month",
                    "Monthly price",
                    "Matches",
                ],
                [
                    [
                        str(p.plan_id),
                        p.name,
                        money.format_tokens(p.tokens_per_hour),
                        money.format_tokens(p.aggregated_month_tokens),
                        money.format_money(p.aggregated_month_price, cur, compact=True),
                        money.format_tokens(p.suggested_monthly_tokens),
                        money.format_money(p.suggested_monthly_price, cur, compact=True),
                        money.format_tokens(p.tokens_per_month),
                        money.format_money(p.monthly_price, cur, compact=True),
                        "yes" if p.matches_suggestion else "no",
                    ]
                    for p in book.plans
                ],
                left=2,
            )
        )
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "section",
    "currency",
    "tokens",
    "price",
    "plan_id",
    "plan_name",
    "tokens_per_hour",
    "aggregated_month_tokens",
    "aggregated_month_price",
    "suggested_monthly_tokens",
    "suggested_monthly_price",
    "tokens_per_month",
    "monthly_price",
    "tokens_per_month_matches_suggestion",
)


def plan_as_dict(p: PlanPriceRow) -> dict[str, object]:
    """Machine form: Decimals as exact strings, so no reader turns them into floats."""
    return {
        "id": p.plan_id,
        "name": p.name,
        "tokens_per_hour": p.tokens_per_hour,
        "aggregated_month_tokens": p.aggregated_month_tokens,
        "aggregated_month_price": str(p.aggregated_month_price),
        "suggested_monthly_tokens": p.suggested_monthly_tokens,
        "suggested_monthly_price": str(p.suggested_monthly_price),
        "tokens_per_month": p.tokens_per_month,
        "monthly_price": str(p.monthly_price),
        "tokens_per_month_matches_suggestion": p.matches_suggestion,
    }


def render_json(book: PriceBook) -> str:
    codes = [c.code for c in book.conversion.currencies]
    data = {
        "currency": book.currency.code,
        "conversion": [
            {
                "tokens": row.tokens,
                "prices": {code: str(price) for code, price in zip(codes, row.prices, strict=True)},
            }
            for row in book.conversion.rows
        ],
        "plans": [plan_as_dict(p) for p in book.plans],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_csv(book: PriceBook) -> str:
    """One CSV, long format: a `section` column says which table a row belongs to
    ("conversion": one row per token amount and currency; "plan": one row per plan in
    the chosen currency). Cells that do not apply to a section are empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in book.conversion.rows:
        for cur, price in zip(book.conversion.currencies, row.prices, strict=True):
            writer.writerow(
                {
                    "section": "conversion",
                    "currency": cur.code,
                    "tokens": row.tokens,
                    "price": price,
                }
            )
    for p in book.plans:
        d = plan_as_dict(p)
        writer.writerow(
            {
                "section": "plan",
                "currency": book.currency.code,
                "plan_id": d.pop("id"),
                "plan_name": d.pop("name"),
                **d,
                "tokens_per_month_matches_suggestion": str(p.matches_suggestion).lower(),
            }
        )
    return out.getvalue()


__all__ = [
    "ConversionRow",
    "ConversionScheme",
    "PlanPriceRow",
    "PriceBook",
    "PriceBookError",
    "build_conversion_scheme",
    "conversion_price",
    "default_currency",
    "format_conversion_price",
    "plan_price_row",
    "price_book",
    "render_csv",
    "render_json",
    "render_table",
]
