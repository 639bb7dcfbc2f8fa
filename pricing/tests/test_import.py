"""manage.py import_billing_data and load_demo_data (the format is in the README)."""

import json
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from bridge import jsonnum
from pricing import imports
from pricing.models import Currency, Discount, Plan, PricingSettings, TaxRule
from pricing.tests.api_helpers import staff_client, unit_cost
from usage.models import SELLER_FIELDS, BillingSettings, logo_file
from users.models import Customer

pytestmark = pytest.mark.django_db

EXAMPLE = Path(settings.BASE_DIR) / "examples" / "billing-data.json"
DEMO = Path(settings.BASE_DIR) / "examples" / "demo-billing-data.json"


def example() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text(), parse_float=Decimal)


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "data.json"
    # Decimals as exact JSON numbers, as another billing system's export has them.
    path.write_text(jsonnum.dumps(data))
    return path


def run(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("import_billing_data", str(path), *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, list]:
    """Every row the importer can touch, including timestamps (a rewrite would show)."""
    through = Customer.discounts.through
    return {
        "currencies": list(Currency.objects.order_by("code").values()),
        "discounts": list(Discount.objects.order_by("id").values()),
        "tax_rules": list(TaxRule.objects.order_by("id").values()),
        "settings": list(PricingSettings.objects.values()),
        "plans": list(Plan.objects.order_by("id").values()),
        "customers": list(Customer.objects.order_by("id").values()),
        "seller": list(BillingSettings.objects.values()),
        "customer_discounts": list(
            through.objects.order_by("customer_id", "discount_id").values_list(
                "customer_id", "discount_id"
            )
        ),
    }


def test_importing_the_example_twice_gives_the_same_state(tmp_path: Path) -> None:
    first = run(EXAMPLE)
    assert first.splitlines() == [
        "currencies: 4 created, 0 updated, 0 unchanged",
        "discounts: 2 created, 0 updated, 0 unchanged",
        "tax_rules: 4 created, 0 updated, 0 unchanged",
        "taxes_compound: updated",
        "plans: 3 created, 0 updated, 0 unchanged",
        "customers: 3 created, 0 updated, 0 unchanged",
        "seller: updated",
    ]
    state = snapshot()
    second = run(EXAMPLE)
    assert second.splitlines() == [
        "currencies: 0 created, 0 updated, 4 unchanged",
        "discounts: 0 created, 0 updated, 2 unchanged",
        "tax_rules: 0 created, 0 updated, 4 unchanged",
        "taxes_compound: unchanged",
        "plans: 0 created, 0 updated, 3 unchanged",
        "customers: 0 created, 0 updated, 3 unchanged",
        "seller: unchanged",
    ]
    assert snapshot() == state


def test_the_example_is_stored_exactly() -> None:
    run(EXAMPLE)
    jpy = Currency.objects.get(code="JPY")
    assert jpy.token_price == Decimal("0.1523456789")
    assert jpy.decimals == 0
    assert Currency.objects.get(code="CHF").display_prefix == "CHF "  # space kept
    assert Currency.objects.get(code="USD").display_suffix == " USD"
    assert TaxRule.objects.get(pk=4).rate == Decimal("8.875")
    alice = Customer.objects.get(pk=17)
    # Lower-case codes in the file are stored upper case.
    assert (alice.currency_id, alice.country) == ("USD", "GB")
    assert sorted(alice.discounts.values_list("id", flat=True)) == [10, 11]
    assert Customer.objects.get(pk=1042).billing_exempt is True
    assert Customer.objects.get(pk=18).status == "locked"
    assert PricingSettings.load().taxes_compound is True
    max_ = Customer.objects.get(pk=18)
    assert (max_.company_name, max_.vat_id) == ("Mustermann GmbH", "DE123456789")
    assert max_.billing_address == "Musterstraße 1\n10115 Berlin\nGermany"
    assert max_.tax_exemption_reason.startswith("Reverse charge")
    seller = BillingSettings.load()
    assert (seller.seller_name, seller.payment_terms_days) == ("Example Hosting Ltd", 30)


def test_changed_rows_are_updated_and_others_left_alone(tmp_path: Path) -> None:
    run(EXAMPLE)
    untouched = Customer.objects.get(pk=18).updated_at
    data = example()
    data["currencies"][0]["token_price"] = Decimal("0.0012")
    data["customers"][0]["discounts"] = [10]
    data["customers"][0]["name"] = "Alice Renamed"
    data["plans"][1]["tokens_per_month"] = 20000
    data["taxes_compound"] = False
    output = run(write(tmp_path, data))
    assert output.splitlines() == [
        "currencies: 0 created, 1 updated, 3 unchanged",
        "discounts: 0 created, 0 updated, 2 unchanged",
        "tax_rules: 0 created, 0 updated, 4 unchanged",
        "taxes_compound: updated",
        "plans: 0 created, 1 updated, 2 unchanged",
        "customers: 0 created, 1 updated, 2 unchanged",
        "seller: unchanged",
    ]
    assert Currency.objects.get(code="USD").token_price == Decimal("0.0012")
    alice = Customer.objects.get(pk=17)
    assert alice.name == "Alice Renamed"
    assert list(alice.discounts.values_list("id", flat=True)) == [10]
    assert Plan.objects.get(pk=5).tokens_per_month == 20000
    assert PricingSettings.load().taxes_compound is False
    assert Customer.objects.get(pk=18).updated_at == untouched


def test_fields_left_out_keep_their_values_on_update(tmp_path: Path) -> None:
    run(EXAMPLE)
    path = write(tmp_path, {"customers": [{"id": 17, "status": "suspended"}]})
    assert "customers: 0 created, 1 updated, 0 unchanged" in run(path)
    alice = Customer.objects.get(pk=17)
    assert (alice.status, alice.email, alice.discounts.count()) == (
        "suspended",
        "alice@example.co.uk",
        2,
    )


def _set(section: str, index: int, **fields: Any):
    def mutate(data: dict[str, Any]) -> None:
        data[section][index].update(fields)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            _set("customers", 1, email="not-an-email"),
            "customers[1] (id=18): email: Enter a valid email address.",
        ),
        (
            _set("currencies", 2, token_price=Decimal("-0.5")),
            "currencies[2] (code=CHF): token_price: Must be greater than 0.",
        ),
        (
            _set("customers", 1, currency="XYZ"),
            "customers[1] (id=18): currency: No currency with code XYZ.",
        ),
        (
            _set("customers", 1, discounts=[10, 99]),
            "customers[1] (id=18): discounts: No discount with id 99.",
        ),
        (
            _set("plans", 1, tokens_per_hour="seven"),
            "plans[1] (id=5): tokens_per_hour: A valid integer is required.",
        ),
        (
            _set("customers", 1, name=Decimal("12.5")),
            "customers[1] (id=18): name: Not a valid string.",
        ),
        (
            _set("tax_rules", 2, country="", region="Bavaria"),
            "tax_rules[2] (id=3): country: A region needs its country.",
        ),
        (
            _set("discounts", 1, valid_until="2026-03-01T00:00:00Z"),
            "discounts[1] (id=11): valid_until: Must be after valid from.",
        ),
        (
            _set("customers", 1, emial="max@example.de"),
            "customers[1] (id=18): emial: Unknown field.",
        ),
        (
            _set("customers", 1, id="18"),
            "customers[1]: id: Must be a positive integer.",
        ),
        (
            _set("customers", 1, id=17),
            "customers[1] (id=17): id: Also in customers[0]; give each one row.",
        ),
        (
            _set("customers", 2, email="ALICE@example.co.uk"),
            "customers[2] (id=1042): email: A customer with this e-mail already exists.",
        ),
        (
            lambda data: data.update(taxes_compound="yes"),
            "taxes_compound: Must be true or false.",
        ),
        (
            lambda data: data["plans"].insert(1, "plan 2"),
            "plans[1]: Expected an object, got a string.",
        ),
        (
            lambda data: data["customers"][1].pop("id"),
            "customers[1]: id: This field is required.",
        ),
        (
            lambda data: data.update(customers={"id": 1}),
            "customers: Expected a list of objects, got an object.",
        ),
        (
            lambda data: data.update(users=[]),
            "Unknown section 'users'; the sections are currencies, discounts, tax_rules, "
            "taxes_compound, plans, customers, seller.",
        ),
        (
            _set("customers", 1, vat_id="DE" + "9" * 70),
            "customers[1] (id=18): vat_id: Ensure this field has no more than 64 characters.",
        ),
        (
            lambda data: data["seller"].update(payment_link_template="https://x.test/{id}"),
            "seller: payment_link_template: Use only {number}, {total}, {currency} and "
            "{customer} in braces ('id').",
        ),
        (
            lambda data: data["seller"].update(logo_path="examples/missing.png"),
            "seller: logo_path: No file at examples/missing.png on this server.",
        ),
        (
            lambda data: data["seller"].update(sellr_name="x"),
            "seller: sellr_name: Unknown field.",
        ),
        (
            lambda data: data.update(seller=[]),
            "seller: Expected an object, got a list.",
        ),
    ],
)
def test_a_bad_row_aborts_the_whole_file_and_names_row_and_field(
    tmp_path: Path, mutate: Any, message: str
) -> None:
    call_command("load_demo_data", stdout=StringIO())
    before = snapshot()
    data = example()
    mutate(data)
    with pytest.raises(CommandError) as excinfo:
        run(write(tmp_path, data))
    assert str(excinfo.value) == f"Nothing was imported. {message}"
    assert excinfo.value.returncode == 1
    # Rows before the bad one (new currencies, discounts, ...) were rolled back too.
    assert snapshot() == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"currencies": [}', "line 1 column 17: Expecting value"),
        ('{"currencies": [{"code": "USD", "token_price": NaN}]}', "NaN is not a number"),
        ("[]", "The file must hold a JSON object with the keys currencies, discounts, "),
    ],
)
def test_a_file_that_is_not_the_format_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(CommandError, match=message.replace("[", r"\[")):
        run(path)
    assert not Currency.objects.exists()


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No such file or directory"):
        run(tmp_path / "nope.json")


def test_a_row_may_refer_to_rows_created_earlier_in_the_file(tmp_path: Path) -> None:
    data = {
        "currencies": [{"code": "nok", "token_price": Decimal("0.0105")}],
        "discounts": [{"id": 3, "name": "Partner", "multiplier": Decimal("0.9")}],
        "customers": [
            {"id": 9, "email": "ola@example.no", "currency": "NOK", "discounts": [3]},
        ],
    }
    run(write(tmp_path, data))
    customer = Customer.objects.get(pk=9)
    assert customer.currency_id == "NOK"
    assert list(customer.discounts.values_list("id", flat=True)) == [3]


def test_dry_run_validates_and_writes_nothing(tmp_path: Path) -> None:
    call_command("load_demo_data", stdout=StringIO())
    before = snapshot()
    output = run(EXAMPLE, "--dry-run")
    assert "customers: 3 created, 0 updated, 0 unchanged" in output
    assert output.splitlines()[-1] == "Dry run: validated and rolled back, nothing was written."
    assert snapshot() == before

    data = example()
    data["customers"][0]["email"] = "bad"
    with pytest.raises(CommandError, match=r"customers\[0\] \(id=17\): email: "):
        run(write(tmp_path, data), "--dry-run")


def test_imported_ids_do_not_collide_with_later_auto_ids(tmp_path: Path) -> None:
    with connection.cursor() as cursor:
        for table in ("pricing_discount", "users_customer"):
            # The next auto id would be the very id the file uses.
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 10, false)", [table])
    data = {
        "currencies": [{"code": "USD", "token_price": Decimal("0.001")}],
        "discounts": [{"id": 10, "name": "Imported", "multiplier": Decimal("0.9")}],
        "customers": [{"id": 10, "email": "a@example.com", "currency": "USD"}],
    }
    run(write(tmp_path, data))
    api = staff_client(Discount, Customer)
    discount = api.post("/api/v1/discounts/", {"name": "New", "multiplier": "0.8"})
    assert discount.status_code == 201, discount.content
    assert discount.json()["id"] == 11
    customer = api.post(
        "/api/v1/customers/", {"email": "b@example.com", "currency": "USD"}, format="json"
    )
    assert customer.status_code == 201, customer.content
    assert customer.json()["id"] == 11


def test_demo_data_gives_the_seed_prices() -> None:
    out = StringIO()
    call_command("load_demo_data", stdout=out)
    assert "customers: 2 created, 0 updated, 0 unchanged" in out.getvalue()
    # 0.00079 × 0.95 × 1.06 × 1.02 (GBP, 5% discount, City and State tax compounding)
    assert unit_cost(1) == Decimal("0.0008114406")
    assert unit_cost(2) == Decimal("0.001")
    plans = list(Plan.objects.values_list("id", "name", "tokens_per_hour", "tokens_per_month"))
    assert plans == [
        (1, "1 Core, 1 GB RAM", 7, 5000),
        (2, "1 Core, 2 GB RAM", 14, 10000),
        (3, "2 Cores, 2 GB RAM", 21, 15000),
        (4, "2 Cores, 4 GB RAM", 28, 20000),
    ]
    assert {c.code: c.token_price for c in Currency.objects.all()} == {
        "EUR": Decimal("0.00091"),
        "GBP": Decimal("0.00079"),
        "USD": Decimal("0.001"),
    }


def test_load_demo_data_is_idempotent() -> None:
    call_command("load_demo_data", stdout=StringIO())
    before = snapshot()
    out = StringIO()
    call_command("load_demo_data", stdout=out)
    assert "customers: 0 created, 0 updated, 2 unchanged" in out.getvalue()
    assert snapshot() == before


def test_the_example_documents_every_field() -> None:
    """examples/billing-data.json shows every field the importer accepts."""
    data = example()
    for section in imports.ROW_SECTIONS:
        writable = {
            name for name, field in section.serializer_class().fields.items() if not field.read_only
        } | {section.key}
        used = set().union(*(row.keys() for row in data[section.name]))
        assert used == writable, section.name
    assert set(data) == set(imports.SECTIONS)
    assert set(data["seller"]) == set(SELLER_FIELDS)


def test_the_demo_data_has_a_seller_and_customers_with_billing_addresses() -> None:
    out = StringIO()
    call_command("load_demo_data", stdout=out)
    assert "seller: updated" in out.getvalue()
    seller = BillingSettings.load()
    assert seller.seller_name == "Example Hosting Ltd"
    assert "London EC1A 1AA" in seller.seller_address
    assert seller.seller_vat_id == "GB123456789"
    assert logo_file(seller.logo_path) is not None
    jane, john = Customer.objects.order_by("id")
    assert (jane.company_name, jane.vat_id) == ("Doe Consulting Ltd", "GB987654321")
    assert "London NW1 6XE" in jane.billing_address
    assert "New York" in john.billing_address
    assert (john.vat_id, bool(john.tax_exemption_reason)) == ("", True)
    again = StringIO()
    call_command("load_demo_data", stdout=again)
    assert "seller: unchanged" in again.getvalue()


def test_the_documented_example_imports_and_gives_the_documented_price(tmp_path: Path) -> None:
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    doc = readme.split("## Importing from another billing system", 1)[1]
    example_json = doc.split("```json\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "doc.json"
    path.write_text(example_json)
    run(path)
    assert unit_cost(1) == Decimal("0.0008114406")
