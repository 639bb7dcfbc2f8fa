"""GetTokenPricing over the real Django stack (DESIGN §3)."""

import json
from decimal import Decimal

from django.test import Client

from users.models import Customer

TOKEN = "test-pricing-token"
URL = "/api/solusio"


def post_form(client: Client, **fields: object) -> tuple[int, dict]:
    response = client.post(URL, data=fields)
    assert response["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.content, parse_float=Decimal)


def test_seed_call_for_the_gbp_customer_returns_the_formula(
    client: Client, gbp_customer: Customer
) -> None:
    status, body = post_form(client, token=TOKEN, action="GetTokenPricing", userid="1")
    assert status == 200
    assert body == {
        "base_token_unit_cost": Decimal("0.00079"),
        # 0.00079 × 0.95 × 1.06 × 1.02
        "user_token_unit_cost": Decimal("0.0008114406"),
        "currency": {
            "code": "GBP",
            "display_prefix": "£",
            "display_suffix": " GBP",
            "decimals": 2,
            "thousands_separator": ",",
            "decimals_separator": ".",
        },
        "discounts": [
            {
                "name": "Special Client Group Discount",
                "description": "5% Recurring Discount",
                "multipler": Decimal("0.95"),
            }
        ],
        "taxes": {
            "compound": True,
            "rates": [{"label": "City Tax", "rate": 6}, {"label": "State Tax", "rate": 2}],
        },
    }
