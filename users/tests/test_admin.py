"""Customer admin: the list staff search and filter, and the token pricing panel."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from pricing.models import Currency, Discount
from users.models import Customer, CustomerStatus

CHANGELIST = reverse("admin:users_customer_changelist")
ADD = reverse("admin:users_customer_add")
# Session, user, counts, the page, the currency and country filters; none per row.
CHANGELIST_MAX_QUERIES = 10


def change(pk: int) -> str:
    return reverse("admin:users_customer_change", args=[pk])


def listed(client: Client, **params: str) -> list[int]:
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return [c.pk for c in response.context["cl"].result_list]


def test_changelist_add_and_change_pages_render(
    admin_client: Client, gbp_customer: Customer
) -> None:
    assert admin_client.get(CHANGELIST).status_code == 200
    assert admin_client.get(ADD).status_code == 200
    assert admin_client.get(change(gbp_customer.pk)).status_code == 200


def test_changelist_shows_the_customer_columns(
    admin_client: Client, gbp_customer: Customer
) -> None:
    body = admin_client.get(CHANGELIST).content.decode()
    for column in ("id", "email", "name", "currency", "country", "region", "status"):
        assert f"column-{column}" in body
    for value in ("jane@example.co.uk", "Jane Doe", "GBP", "GB", "London", "Active"):
        assert value in body


def test_change_page_shows_the_token_pricing_that_get_token_pricing_answers(
    admin_client: Client, gbp_customer: Customer
) -> None:
    body = admin_client.get(change(gbp_customer.pk)).content.decode()
    assert "0.00079 GBP" in body  # base token cost
    assert "Special Client Group Discount" in body
    assert "5% Recurring Discount" in body
    assert "× 0.95" in body
    assert "Taxes (compound)" in body
    assert "City Tax: 6 %" in body
    assert "State Tax: 2 %" in body
    # 0.00079 × 0.95 × 1.06 × 1.02, the same figure as the GetTokenPricing test
    assert "0.0008114406 GBP" in body
    # 1,000 tokens: 0.8114406 → £0.81; before discounts and taxes 0.79 → £0.79
    assert "1,000 tokens cost the customer" in body
    assert "£0.81 (before discounts and taxes £0.79)" in body


def test_token_pricing_panel_leaves_out_discounts_not_in_force(
    admin_client: Client, gbp_customer: Customer
) -> None:
    ended = Discount.objects.create(
        name="Spring sale",
        multiplier=Decimal("0.5"),
        valid_until=timezone.now() - timedelta(days=1),
    )
    gbp_customer.discounts.add(ended)
    body = admin_client.get(change(gbp_customer.pk)).content.decode()
    panel = body[body.index("field-token_pricing") :]
    assert "Spring sale" not in panel
    assert "0.0008114406 GBP" in panel


def test_billing_exempt_customer_panel_shows_zero_cost(admin_client: Client, usd: Currency) -> None:
    customer = Customer.objects.create(email="free@example.com", currency=usd, billing_exempt=True)
    body = admin_client.get(change(customer.pk)).content.decode()
    assert "0 USD (billing-exempt)" in body
    assert "$0.00 (before discounts and taxes $1.00)" in body
    assert "Discounts in force</th><td>none" in body
    assert "Taxes (simple)</th><td>none" in body


def test_add_page_has_no_pricing_panel_and_a_discount_picker(
    admin_client: Client, loyalty: Discount
) -> None:
    body = admin_client.get(ADD).content.decode()
    assert "field-token_pricing" not in body
    assert 'class="selectfilter"' in body or "SelectFilter" in body  # filter_horizontal


def test_add_page_creates_a_customer_with_discounts(
    admin_client: Client, gbp: Currency, loyalty: Discount
) -> None:
    response = admin_client.post(
        ADD,
        {
            "email": "new@example.com",
            "name": "New",
            "status": "active",
            "currency": "GBP",
            "country": "GB",
            "region": "",
            "discounts": [str(loyalty.pk)],
        },
    )
    assert response.status_code == 302
    customer = Customer.objects.get(email="new@example.com")
    assert list(customer.discounts.all()) == [loyalty]


def test_the_change_page_edits_the_invoice_details(
    admin_client: Client, gbp_customer: Customer
) -> None:
    page = admin_client.get(change(gbp_customer.pk)).content.decode()
    assert "Invoice details" in page
    for name in ("company_name", "billing_address", "vat_id", "tax_exemption_reason"):
        assert f'name="{name}"' in page
    form = {
        "email": gbp_customer.email,
        "name": gbp_customer.name,
        "status": gbp_customer.status,
        "currency": gbp_customer.currency_id,
        "country": gbp_customer.country,
        "region": gbp_customer.region,
        "discounts": [str(d.pk) for d in gbp_customer.discounts.all()],
        "company_name": "Doe Consulting Ltd",
        "billing_address": "221B Baker Street\nLondon",
        "vat_id": "GB987654321",
        "tax_exemption_reason": "",
    }
    assert admin_client.post(change(gbp_customer.pk), form).status_code == 302
    gbp_customer.refresh_from_db()
    assert (gbp_customer.company_name, gbp_customer.vat_id) == ("Doe Consulting Ltd", "GB987654321")
    assert gbp_customer.billing_address.splitlines() == ["221B Baker Street", "London"]


def test_search_by_id_email_and_name(
    admin_client: Client, gbp_customer: Customer, usd: Currency
) -> None:
    other = Customer.objects.create(id=42, email="bob@example.com", name="Bob", currency=usd)
    assert listed(admin_client, q="42") == [other.pk]
    assert listed(admin_client, q="jane@example") == [gbp_customer.pk]
    assert listed(admin_client, q="Bob") == [other.pk]
    # A word is not an id: it must not break the exact id lookup.
    assert listed(admin_client, q="nobody") == []


def test_filters_by_status_currency_country_and_exemption(
    admin_client: Client, gbp_customer: Customer, usd: Currency
) -> None:
    other = Customer.objects.create(
        email="us@example.com",
        currency=usd,
        status=CustomerStatus.SUSPENDED,
        billing_exempt=True,
    )
    assert listed(admin_client, status__exact="suspended") == [other.pk]
    assert listed(admin_client, currency__code__exact="GBP") == [gbp_customer.pk]
    assert listed(admin_client, country="GB") == [gbp_customer.pk]
    assert listed(admin_client, country="-") == [other.pk]  # no country
    assert listed(admin_client, billing_exempt__exact="1") == [other.pk]


def test_changelist_runs_a_bounded_number_of_queries_with_30_rows(
    admin_client: Client,
    django_assert_max_num_queries: object,
    usd: Currency,
    gbp: Currency,
    loyalty: Discount,
) -> None:
    for i in range(30):
        customer = Customer.objects.create(
            email=f"c{i}@example.com", currency=(usd, gbp)[i % 2], country=("GB", "US")[i % 2]
        )
        customer.discounts.add(loyalty)
    admin_client.get(reverse("admin:index"))  # warm the session and content types
    with django_assert_max_num_queries(CHANGELIST_MAX_QUERIES):  # type: ignore[operator]
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 30


@pytest.mark.django_db
def test_change_page_of_a_missing_customer_redirects(admin_client: Client) -> None:
    # Django's admin sends staff back to the list with a message rather than a 500.
    assert admin_client.get(change(999)).status_code == 302


def test_the_change_page_shows_the_customer_dunning_steps(
    admin_client: Client, gbp_customer: Customer
) -> None:
    from django.utils import timezone

    from usage.models import DunningAction, DunningEvent

    DunningEvent.objects.create(
        customer=gbp_customer,
        action=DunningAction.values[0],
        reason="Invoice 2026-000042 unpaid 14 days after issue",
        at=timezone.now(),
    )
    body = admin_client.get(change(gbp_customer.pk)).content.decode()
    assert "Invoice 2026-000042 unpaid 14 days after issue" in body
