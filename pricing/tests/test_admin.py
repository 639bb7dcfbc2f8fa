"""Admin pages for billing staff: currencies, discounts, tax rules, settings, plans."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from pricing.models import Currency, Discount, Plan, PricingSettings, TaxRule
from users.models import Customer

# Queries a changelist may run whatever its row count: session, user, counts, the page,
# filters. A per-row query would blow through it with 30 rows.
CHANGELIST_MAX_QUERIES = 10


def changelist(model: str) -> str:
    return reverse(f"admin:pricing_{model}_changelist")


def change(model: str, pk: object) -> str:
    return reverse(f"admin:pricing_{model}_change", args=[pk])


def add(model: str) -> str:
    return reverse(f"admin:pricing_{model}_add")


@pytest.fixture
def cast(usd: Currency, eur: Currency, loyalty: Discount, seed_taxes: list[TaxRule]) -> None:
    Plan.objects.create(id=1, name="1 Core, 1 GB RAM", tokens_per_hour=7, tokens_per_month=5000)


@pytest.mark.usefixtures("cast")
@pytest.mark.parametrize("model", ["currency", "discount", "taxrule", "plan"])
def test_changelist_and_add_pages_render(admin_client: Client, model: str) -> None:
    assert admin_client.get(changelist(model)).status_code == 200
    assert admin_client.get(add(model)).status_code == 200


@pytest.mark.usefixtures("cast")
@pytest.mark.parametrize(
    ("model", "pk"),
    [("currency", "USD"), ("currency", "EUR"), ("plan", 1), ("pricingsettings", 1)],
)
def test_change_pages_render(admin_client: Client, model: str, pk: object) -> None:
    assert admin_client.get(change(model, pk)).status_code == 200


def test_discount_and_tax_rule_change_pages_render(
    admin_client: Client, loyalty: Discount, seed_taxes: list[TaxRule]
) -> None:
    assert admin_client.get(change("discount", loyalty.pk)).status_code == 200
    for rule in seed_taxes:
        assert admin_client.get(change("taxrule", rule.pk)).status_code == 200


def test_admin_index_lists_every_pricing_model(admin_client: Client) -> None:
    body = admin_client.get(reverse("admin:index")).content.decode()
    for model in ("currency", "discount", "taxrule", "pricingsettings", "plan"):
        assert changelist(model) in body


# --- currencies --------------------------------------------------------------------------


def test_currency_changelist_shows_normalized_price_and_10000_token_preview(
    admin_client: Client, usd: Currency, eur: Currency
) -> None:
    body = admin_client.get(changelist("currency")).content.decode()
    assert "10,000 tokens" in body
    # Written as the currency writes it, exact, at least 5 decimals (not 0.0010000000).
    assert ">$0.00100\u00a0USD<" in body
    assert "0,00091" in body
    assert "0.0010000" not in body
    assert "$10.00000" in body
    assert "€9,10000" in body  # the conftest EUR uses a decimal comma


def test_currency_change_page_shows_its_conversion_scheme(
    admin_client: Client, usd: Currency
) -> None:
    body = admin_client.get(change("currency", "USD")).content.decode()
    for tokens, price in [
        ("1", "$0.00100"),
        ("10", "$0.01000"),
        ("100", "$0.10000"),
        ("1,000", "$1.00000"),
        ("10,000", "$10.00000"),
    ]:
        assert f"<td>{tokens}</td><td>{price}</td>" in body


def test_currency_code_is_read_only_once_created(admin_client: Client, usd: Currency) -> None:
    body = admin_client.get(change("currency", "USD")).content.decode()
    assert 'name="code"' not in body
    assert 'name="code"' in admin_client.get(add("currency")).content.decode()


# --- discounts ---------------------------------------------------------------------------


def test_discount_changelist_shows_validity_in_force_and_customer_count(
    admin_client: Client, usd: Currency, loyalty: Discount
) -> None:
    now = timezone.now()
    Discount.objects.create(
        name="Expired promo",
        multiplier=Decimal("0.5"),
        valid_from=now - timedelta(days=30),
        valid_until=now - timedelta(days=1),
    )
    for i in range(2):
        Customer.objects.create(email=f"c{i}@example.com", currency=usd).discounts.add(loyalty)

    response = admin_client.get(changelist("discount"))
    rows = {
        obj.name: obj
        for obj in response.context["cl"].result_list  # the annotated queryset the page shows
    }
    assert rows["Special Client Group Discount"].customer_count == 2
    assert rows["Expired promo"].customer_count == 0
    body = response.content.decode()
    assert "5% Recurring Discount" in body
    assert "5\u00a0% discount (×0.95)<" in body
    assert "always" in body
    assert 'alt="True"' in body  # the loyalty discount is in force
    assert 'alt="False"' in body  # the promo has ended


# --- tax rules ---------------------------------------------------------------------------


def test_tax_rule_changelist_edits_rate_and_order_in_place(
    admin_client: Client, seed_taxes: list[TaxRule]
) -> None:
    city, state = seed_taxes
    body = admin_client.get(changelist("taxrule")).content.decode()
    assert 'name="form-0-rate"' in body
    assert 'name="form-0-order"' in body
    response = admin_client.post(
        changelist("taxrule"),
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-0-id": str(city.pk),
            "form-0-rate": "7.5",
            "form-0-order": "3",
            "form-1-id": str(state.pk),
            "form-1-rate": "2",
            "form-1-order": "2",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    city.refresh_from_db()
    assert (city.rate, city.order) == (Decimal("7.5"), 3)


def test_tax_rule_country_filter_names_the_blank_country(
    admin_client: Client, seed_taxes: list[TaxRule]
) -> None:
    TaxRule.objects.create(label="Global levy", rate=Decimal(1))
    everywhere = admin_client.get(changelist("taxrule"), {"country": "-"})
    assert [r.label for r in everywhere.context["cl"].result_list] == ["Global levy"]
    assert "(none)" in everywhere.content.decode()
    gb = admin_client.get(changelist("taxrule"), {"country": "GB"})
    assert {r.label for r in gb.context["cl"].result_list} == {"City Tax", "State Tax"}


# --- pricing settings (a singleton) --------------------------------------------------------


@pytest.mark.django_db
def test_settings_changelist_redirects_to_the_single_row_creating_it(
    admin_client: Client,
) -> None:
    assert not PricingSettings.objects.exists()
    response = admin_client.get(changelist("pricingsettings"))
    assert response.status_code == 302
    assert response["Location"] == change("pricingsettings", 1)
    assert PricingSettings.objects.count() == 1
    assert admin_client.get(response["Location"]).status_code == 200


@pytest.mark.django_db
def test_settings_cannot_be_added_twice_nor_deleted(admin_client: Client) -> None:
    assert admin_client.get(add("pricingsettings")).status_code == 200  # no row yet
    PricingSettings.load()
    assert admin_client.get(add("pricingsettings")).status_code == 403
    delete_url = reverse("admin:pricing_pricingsettings_delete", args=[1])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert PricingSettings.objects.count() == 1


@pytest.mark.django_db
def test_settings_change_page_saves_compound(admin_client: Client) -> None:
    PricingSettings.load()
    response = admin_client.post(change("pricingsettings", 1), {"taxes_compound": "on"})
    assert response.status_code == 302
    assert PricingSettings.load().taxes_compound is True


# --- plans -------------------------------------------------------------------------------


def test_plan_changelist_shows_aggregate_suggestion_and_match(
    admin_client: Client, usd: Currency
) -> None:
    Plan.objects.create(id=1, name="1 Core, 1 GB RAM", tokens_per_hour=7, tokens_per_month=5000)
    Plan.objects.create(id=2, name="Off-book", tokens_per_hour=14, tokens_per_month=9999)
    body = admin_client.get(changelist("plan")).content.decode()
    assert '<td class="field-per_hour">7</td>' in body
    assert '<td class="field-per_month">5,000</td>' in body  # not "5000"
    assert '<td class="field-per_month">9,999</td>' in body
    assert '<td class="field-aggregated_month">5,208</td>' in body
    assert '<td class="field-suggested_monthly">5,000</td>' in body
    assert '<td class="field-aggregated_month">10,416</td>' in body
    assert 'alt="True"' in body
    assert 'alt="False"' in body  # 9999 is not the suggested 10,000


def test_plan_change_page_shows_the_price_book_in_usd(
    admin_client: Client, usd: Currency, eur: Currency
) -> None:
    Plan.objects.create(id=1, name="1 Core, 1 GB RAM", tokens_per_hour=7, tokens_per_month=5000)
    body = admin_client.get(change("plan", 1)).content.decode()
    assert "Price book (Step 2) in USD" in body
    readonly = {
        field: value
        for field, value in [
            ("aggregated_month", "5,208"),
            ("aggregated_month_price", "$5.21"),
            ("suggested_monthly", "5,000"),
            ("suggested_monthly_price", "$5.00"),
            ("monthly_price", "$5.00"),
        ]
    }
    for field, value in readonly.items():
        assert f'<div class="readonly">{value}</div>' in _field_block(body, field)


def test_plan_change_page_without_usd_uses_the_first_currency(
    admin_client: Client, gbp: Currency, eur: Currency
) -> None:
    Plan.objects.create(id=1, name="1 Core, 1 GB RAM", tokens_per_hour=7, tokens_per_month=5000)
    body = admin_client.get(change("plan", 1)).content.decode()
    assert "Price book (Step 2) in EUR" in body
    # 5208 × 0.00091 = 4.73928 → €4,74 with the conftest EUR's decimal comma.
    assert '<div class="readonly">€4,74</div>' in _field_block(body, "aggregated_month_price")


@pytest.mark.django_db
def test_plan_change_page_without_currencies_says_so(admin_client: Client) -> None:
    Plan.objects.create(id=1, name="P", tokens_per_hour=7, tokens_per_month=5000)
    body = admin_client.get(change("plan", 1)).content.decode()
    assert "add a currency to see prices" in body
    assert "5,208" in body


def _field_block(body: str, field: str) -> str:
    """The HTML of one admin form row, so an assertion cannot match a neighbour's value."""
    start = body.index(f"field-{field}")
    end = body.find("form-row", start + 1)
    return body[start : end if end != -1 else len(body)]


# --- no N+1 ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_changelists_run_a_bounded_number_of_queries_with_30_rows(
    admin_client: Client, django_assert_max_num_queries: object, usd: Currency
) -> None:
    now = timezone.now()
    for i in range(30):
        Currency.objects.create(code=f"X{chr(65 + i // 26)}{chr(65 + i % 26)}", token_price="0.01")
        discount = Discount.objects.create(
            name=f"D{i}", multiplier=Decimal("0.9"), valid_until=now + timedelta(days=i + 1)
        )
        Customer.objects.create(email=f"c{i}@example.com", currency=usd).discounts.add(discount)
        TaxRule.objects.create(label=f"T{i}", rate=Decimal(i % 10), country="GB", order=i)
        Plan.objects.create(id=i + 1, name=f"P{i}", tokens_per_hour=i, tokens_per_month=i * 700)
    admin_client.get(reverse("admin:index"))  # warm the session and content types

    for model in ("currency", "discount", "taxrule", "plan"):
        with django_assert_max_num_queries(CHANGELIST_MAX_QUERIES):  # type: ignore[operator]
            response = admin_client.get(changelist(model))
        assert response.status_code == 200
        assert response.context["cl"].result_count >= 30
