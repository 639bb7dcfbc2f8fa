"""The price book (seed Steps 1 and 2) and `manage.py pricing_scheme`."""

import csv
import io
import json
import re
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from hypothesis import given
from hypothesis import strategies as st

from pricing import calc, pricebook
from pricing.models import Currency, Plan

# The seed's conversion scheme: tokens, price in USD, price in EUR.
SEED_CONVERSION = [
    (1, "$0.00100", "€0.00091"),
    (10, "$0.01000", "€0.00910"),
    (100, "$0.10000", "€0.09100"),
    (1_000, "$1.00000", "€0.91000"),
    (10_000, "$10.00000", "€9.10000"),
]
# The seed's plans table: name, tph, aggregated month, its USD, tokens per month, its USD.
SEED_PLANS = [
    ("1 Core, 1 GB RAM", 7, 5208, "5.21", 5000, "5.00"),
    ("1 Core, 2 GB RAM", 14, 10416, "10.42", 10000, "10.00"),
    ("2 Cores, 2 GB RAM", 21, 15624, "15.62", 15000, "15.00"),
    ("2 Cores, 4 GB RAM", 28, 20832, "20.83", 20000, "20.00"),
]


@pytest.fixture
def seed_eur(db: None) -> Currency:
    """EUR as the seed prints it (English separators, unlike the conftest `eur`)."""
    return Currency.objects.create(
        code="EUR", token_price=Decimal("0.00091"), display_prefix="€", display_suffix=" EUR"
    )


@pytest.fixture
def seed_plans(db: None) -> list[Plan]:
    return [
        Plan.objects.create(id=i, name=name, tokens_per_hour=tph, tokens_per_month=tpm)
        for i, (name, tph, _, _, tpm, _) in enumerate(SEED_PLANS, start=1)
    ]


@pytest.fixture
def seed_book(usd: Currency, seed_eur: Currency, seed_plans: list[Plan]) -> None:
    """USD 0.001, EUR 0.00091 and the seed's four plans."""


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("pricing_scheme", *args, stdout=out)
    return out.getvalue()


def cells(line: str) -> list[str]:
    # Columns are two or more spaces apart; plan names hold single spaces.
    return re.split(r"\s{2,}", line.strip())


# --- selectors -------------------------------------------------------------------------


@pytest.mark.usefixtures("seed_book")
def test_conversion_scheme_is_exact_and_lists_usd_first() -> None:
    book = pricebook.price_book()
    assert [c.code for c in book.conversion.currencies] == ["USD", "EUR"]
    assert [(r.tokens, [str(p) for p in r.prices]) for r in book.conversion.rows] == [
        (1, ["0.00100", "0.00091"]),
        (10, ["0.01000", "0.00910"]),
        (100, ["0.10000", "0.09100"]),
        (1000, ["1.00000", "0.91000"]),
        (10000, ["10.00000", "9.10000"]),
    ]
    # Exact products, not rounded to the currency's cents.
    assert book.conversion.rows[0].prices[1] == Decimal("0.00091")


@pytest.mark.usefixtures("seed_book")
def test_plans_table_matches_the_seed() -> None:
    book = pricebook.price_book()
    assert book.currency.code == "USD"
    assert [
        (
            p.name,
            p.tokens_per_hour,
            p.aggregated_month_tokens,
            p.aggregated_month_price,
            p.suggested_monthly_tokens,
            p.suggested_monthly_price,
        )
        for p in book.plans
    ] == [
        (n, tph, agg, Decimal(aggp), tpm, Decimal(tpmp))
        for n, tph, agg, aggp, tpm, tpmp in SEED_PLANS
    ]
    # The seed's plans carry the suggestion as their tokens per month.
    assert all(p.matches_suggestion for p in book.plans)
    assert [(p.tokens_per_month, p.monthly_price) for p in book.plans] == [
        (tpm, Decimal(tpmp)) for _, _, _, _, tpm, tpmp in SEED_PLANS
    ]


def test_plan_row_flags_a_tokens_per_month_that_differs_from_the_suggestion(usd: Currency) -> None:
    plan = Plan(id=9, name="Odd", tokens_per_hour=7, tokens_per_month=5100)
    row = pricebook.plan_price_row(plan, usd)
    assert row.suggested_monthly_tokens == 5000
    assert row.tokens_per_month == 5100
    assert row.monthly_price == Decimal("5.10")
    assert row.matches_suggestion is False


# --- the command, three formats ------------------------------------------------------------


@pytest.mark.usefixtures("seed_book")
def test_table_format_prints_the_seeds_tables() -> None:
    lines = run().splitlines()
    header = lines.index("Tokens        USD       EUR")
    conversion = [cells(line) for line in lines[header + 1 : header + 6]]
    assert conversion == [[f"{t:,}", usd, eur] for t, usd, eur in SEED_CONVERSION]
    assert "10,000  $10.00000  €9.10000" in lines

    plan_header = next(i for i, line in enumerate(lines) if line.startswith("ID  Plan"))
    plans = [cells(line) for line in lines[plan_header + 1 :]]
    assert plans == [
        [
            str(i),
            n,
            str(tph),
            f"{agg:,}",
            f"${aggp}",
            f"{tpm:,}",
            f"${tpmp}",
            f"{tpm:,}",
            f"${tpmp}",
            "yes",
        ]
        for i, (n, tph, agg, aggp, tpm, tpmp) in enumerate(SEED_PLANS, start=1)
    ]
    assert "Plans in USD" in run()


@pytest.mark.usefixtures("seed_book")
def test_csv_format_has_raw_decimals_in_one_sectioned_csv() -> None:
    rows = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    conversion = [
        (r["tokens"], r["currency"], r["price"]) for r in rows if r["section"] == "conversion"
    ]
    assert conversion == [
        (str(t), code, price.lstrip("$€"))
        for t, usd, eur in SEED_CONVERSION
        for code, price in (("USD", usd), ("EUR", eur))
    ]
    plans = [r for r in rows if r["section"] == "plan"]
    assert [
        (
            r["plan_id"],
            r["plan_name"],
            r["currency"],
            r["tokens_per_hour"],
            r["aggregated_month_tokens"],
            r["aggregated_month_price"],
            r["suggested_monthly_tokens"],
            r["suggested_monthly_price"],
            r["tokens_per_month"],
            r["monthly_price"],
            r["tokens_per_month_matches_suggestion"],
        )
        for r in plans
    ] == [
        (str(i), n, "USD", str(tph), str(agg), aggp, str(tpm), tpmp, str(tpm), tpmp, "true")
        for i, (n, tph, agg, aggp, tpm, tpmp) in enumerate(SEED_PLANS, start=1)
    ]
    assert {r["section"] for r in rows} == {"conversion", "plan"}


@pytest.mark.usefixtures("seed_book")
def test_json_format_has_decimals_as_strings() -> None:
    data = json.loads(run("--format", "json"))
    assert data["currency"] == "USD"
    assert data["conversion"] == [
        {"tokens": t, "prices": {"USD": usd.lstrip("$"), "EUR": eur.lstrip("€")}}
        for t, usd, eur in SEED_CONVERSION
    ]
    assert data["plans"] == [
        {
            "id": i,
            "name": n,
            "tokens_per_hour": tph,
            "aggregated_month_tokens": agg,
            "aggregated_month_price": aggp,
            "suggested_monthly_tokens": tpm,
            "suggested_monthly_price": tpmp,
            "tokens_per_month": tpm,
            "monthly_price": tpmp,
            "tokens_per_month_matches_suggestion": True,
        }
        for i, (n, tph, agg, aggp, tpm, tpmp) in enumerate(SEED_PLANS, start=1)
    ]


@pytest.mark.usefixtures("seed_book")
def test_currency_option_prices_plans_in_that_currency_and_lists_it_first() -> None:
    data = json.loads(run("--format", "json", "--currency", "eur"))
    assert data["currency"] == "EUR"
    assert list(data["conversion"][0]["prices"]) == ["EUR", "USD"]
    # 5208 × 0.00091 = 4.73928 → 4.74; 5000 × 0.00091 = 4.55
    first = data["plans"][0]
    assert (first["aggregated_month_price"], first["suggested_monthly_price"]) == ("4.74", "4.55")


def test_table_uses_each_currencys_own_separators(
    usd: Currency, eur: Currency, seed_plans: list[Plan]
) -> None:
    out = run("--currency", "EUR")
    assert "10,000  €9,10000  $10.00000" in out.splitlines()
    plan_line = next(line for line in out.splitlines() if "2 Cores, 4 GB RAM" in line)
    # 20832 × 0.00091 = 18.95712 → €18,96; tokens stay comma-grouped.
    assert cells(plan_line)[2:5] == ["28", "20,832", "€18,96"]


def test_default_currency_is_the_first_by_code_without_usd(gbp: Currency, eur: Currency) -> None:
    assert json.loads(run("--format", "json"))["currency"] == "EUR"


def test_no_plans_still_prints_the_conversion_scheme(usd: Currency) -> None:
    out = run()
    assert "10,000  $10.00000" in out
    assert "(no plans)" in out
    assert json.loads(run("--format", "json"))["plans"] == []


@pytest.mark.usefixtures("seed_book")
def test_unknown_currency_is_a_command_error_naming_the_known_ones() -> None:
    with pytest.raises(CommandError, match=r"Unknown currency 'XYZ'; known: EUR, USD"):
        run("--currency", "XYZ")


@pytest.mark.django_db
def test_empty_database_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="No currencies"):
        run()


# --- the suggestion rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aggregated", "suggested"),
    [(5208, 5000), (10416, 10000), (15624, 15000), (20832, 20000), (744, 700), (9, 9)],
)
def test_suggested_monthly_tokens_seed_values(aggregated: int, suggested: int) -> None:
    assert calc.suggested_monthly_tokens(aggregated) == suggested


@given(
    st.one_of(
        st.integers(min_value=0, max_value=10**12), st.integers(0, 10**6).map(lambda h: h * 744)
    )
)
def test_suggestion_is_a_round_number_just_below_the_aggregate(aggregated: int) -> None:
    suggested = calc.suggested_monthly_tokens(aggregated)
    assert 0 <= suggested <= aggregated
    if aggregated < 10:
        assert suggested == aggregated
    else:
        assert suggested > aggregated / 2
        leading_power = 1
        while leading_power * 10 <= aggregated:
            leading_power *= 10
        assert suggested % (leading_power // 2) == 0
