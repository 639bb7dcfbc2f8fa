"""A pricing change the pricing cache refuses (a private redis-server whose ACL refuses
DEL) is not made, and staff are told so: a 503 in the staff API, an error on the admin
page, a one-line error from import_billing_data; never a 500."""

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from bridge.api import CACHE_REFUSED_RETRY_AFTER
from pricing.answercache import AnswerCache
from pricing.models import PricingSettings, TaxRule
from pricing.tests.api_helpers import body, staff_client
from pricing.tests.redis_server import RedisServer
from users.models import Customer

pytestmark = pytest.mark.django_db

NOT_SAVED = "Not saved: the pricing cache refused the change; try again."


@pytest.fixture
def refusing(
    tmp_path: Path,
    make_answer_cache: Callable[..., AnswerCache],
    gbp_customer: Customer,
) -> Iterator[None]:
    """The answer cache on a Redis that answers but refuses to drop the generation; the
    seed rows (gbp_customer) are written before it starts refusing."""
    server = RedisServer(tmp_path)
    server.start()
    make_answer_cache(redis_url=server.url)
    with server.client() as raw:
        raw.acl_setuser("default", enabled=True, nopass=True, commands=["-del"])
    yield
    server.stop()


def city_tax() -> TaxRule:
    return TaxRule.objects.get(label="City Tax")


# --- staff API ---------------------------------------------------------------------------


@pytest.mark.usefixtures("refusing")
@pytest.mark.parametrize(
    "method",
    [
        "patch",
        # A deletion's own atomic block has no savepoint: inside a test's transaction
        # its rollback would poison that transaction, so this one commits for real.
        pytest.param("delete", marks=pytest.mark.django_db(transaction=True)),
    ],
)
def test_the_api_answers_503_with_retry_after_and_changes_nothing(method: str) -> None:
    client = staff_client(TaxRule)
    url = f"/api/v1/tax-rules/{city_tax().pk}/"
    response = getattr(client, method)(url, {"rate": "10"}, format="json")
    assert response.status_code == 503, response.content
    assert body(response) == {"message": NOT_SAVED, "errors": {}}
    assert response["Retry-After"] == str(CACHE_REFUSED_RETRY_AFTER)
    assert city_tax().rate == Decimal(6)


@pytest.mark.usefixtures("refusing")
def test_the_api_answers_503_for_the_pricing_settings_singleton() -> None:
    client = staff_client(PricingSettings)
    response = client.patch("/api/v1/pricing-settings/", {"taxes_compound": False}, format="json")
    assert response.status_code == 503, response.content
    assert body(response)["message"] == NOT_SAVED
    assert PricingSettings.load().taxes_compound is True


# --- admin -------------------------------------------------------------------------------


@pytest.mark.usefixtures("refusing")
def test_the_admin_form_shows_the_refusal_with_what_was_entered(admin_client: Client) -> None:
    rule = city_tax()
    url = reverse("admin:pricing_taxrule_change", args=[rule.pk])
    form = {"label": "City Tax", "rate": "7.25", "country": "GB", "region": "London", "order": 1}
    response = admin_client.post(url, form)
    assert response.status_code == 200  # the form again, not a redirect nor a 500
    page = response.content.decode()
    assert NOT_SAVED in page
    assert 'value="7.25"' in page  # what staff entered, to try again
    assert city_tax().rate == Decimal(6)


@pytest.mark.usefixtures("refusing")
def test_an_admin_add_that_is_refused_creates_nothing(admin_client: Client) -> None:
    form = {"label": "County Tax", "rate": "1", "country": "GB", "region": "", "order": 3}
    response = admin_client.post(reverse("admin:pricing_taxrule_add"), form)
    assert response.status_code == 200
    assert NOT_SAVED in response.content.decode()
    assert not TaxRule.objects.filter(label="County Tax").exists()


@pytest.mark.usefixtures("refusing")
def test_the_changelist_edit_reports_the_refusal(admin_client: Client) -> None:
    rules = list(TaxRule.objects.order_by("order"))
    url = reverse("admin:pricing_taxrule_changelist")
    form: dict[str, object] = {
        "form-TOTAL_FORMS": len(rules),
        "form-INITIAL_FORMS": len(rules),
        "_save": "Save",
    }
    for i, rule in enumerate(rules):
        form |= {f"form-{i}-id": rule.pk, f"form-{i}-rate": "9", f"form-{i}-order": rule.order}
    response = admin_client.post(url, form, follow=True)
    assert response.redirect_chain == [(url, 302)]
    assert [str(m) for m in response.context["messages"]] == [NOT_SAVED]
    assert [r.rate for r in TaxRule.objects.order_by("order")] == [Decimal(6), Decimal(2)]


@pytest.mark.usefixtures("refusing")
def test_an_admin_delete_that_is_refused_keeps_the_row(admin_client: Client) -> None:
    url = reverse("admin:pricing_taxrule_delete", args=[city_tax().pk])
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert response.redirect_chain == [(url, 302)]
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["Not deleted: the pricing cache refused the change; try again."]
    assert city_tax().rate == Decimal(6)


@pytest.mark.usefixtures("refusing")
def test_the_customer_form_shows_the_refusal(admin_client: Client) -> None:
    customer = Customer.objects.get(pk=1)
    url = reverse("admin:users_customer_change", args=[customer.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    form = {**page.context["adminform"].form.initial, "region": "Leeds"}
    form = {k: v for k, v in form.items() if v is not None}
    form["discounts"] = [d.pk for d in customer.discounts.all()]
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert NOT_SAVED in response.content.decode()
    assert Customer.objects.get(pk=1).region == "London"


# --- import_billing_data -----------------------------------------------------------------


@pytest.mark.usefixtures("refusing")
def test_an_import_refused_by_the_cache_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('{"tax_rules": [{"id": 99, "label": "County Tax", "rate": 1}]}')
    with pytest.raises(CommandError) as raised:
        call_command("import_billing_data", str(path))
    message = str(raised.value)
    assert message == ("Nothing was imported. The pricing cache refused the change; try again.")
    assert not TaxRule.objects.filter(pk=99).exists()
