"""Online payment through the fake Stripe over real HTTP: checkout amounts, webhook
signatures, payments recorded once, automatic collection, and nothing at all while off."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from bridge.celery import app
from payments import collect, minor_units, stripe_pay
from payments.fake_stripe import RunningFake, sign
from payments.fake_stripe.testing import SECRET_KEY, WEBHOOK_SECRET, control
from payments.models import (
    CollectionAttempt,
    CollectionState,
    Payment,
    PaymentMethod,
    StripeCustomer,
    StripeEvent,
    StripeEventState,
)
from payments.services import invoice_balance, record_payment
from pricing.models import Currency
from usage import invoice_states, legal
from usage.models import BillingSettings, Invoice, InvoiceStatus
from usage.rules import PricingSnapshot
from users.models import Customer

pytestmark = pytest.mark.django_db
D = Decimal
WEBHOOK = "/payments/stripe/webhook/"
RETURN = "http://testserver/account/pay/x/"


@pytest.fixture(autouse=True)
def eager() -> Iterator[None]:
    """Tasks run where they are sent (the webhook's, on commit)."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def currency(code: str, decimals: int) -> Currency:
    return Currency.objects.get_or_create(
        code=code, defaults={"token_price": D("0.001"), "decimals": decimals}
    )[0]


def snapshot(code: str, decimals: int) -> dict[str, Any]:
    return PricingSnapshot(
        currency=code,
        token_price=D("0.001"),
        decimals=decimals,
        display_prefix="",
        display_suffix=f" {code}",
        thousands_separator=",",
        decimals_separator=".",
        discounts=(),
        taxes=(),
        compound=False,
        exempt=False,
    ).as_json()


Make = Callable[..., Invoice]


@pytest.fixture
def make() -> Make:
    """An issued invoice (or a draft) of `total` in `code` for a customer of that currency."""
    counter = iter(range(1, 1000))

    def build(
        total: str,
        code: str = "USD",
        decimals: int = 2,
        customer: Customer | None = None,
        issued: bool = True,
    ) -> Invoice:
        n = next(counter)
        if customer is None:
            customer = Customer.objects.create(
                email=f"c{n}-{code.lower()}@example.test", currency=currency(code, decimals)
            )
        month = n % 12 + 1
        invoice = Invoice.objects.create(
            customer=customer,
            period=date(2025, month, 1),
            period_start=datetime(2025, month, 1, tzinfo=UTC),
            period_end=datetime(2025 + month // 12, month % 12 + 1, 1, tzinfo=UTC),
            currency=code,
            subtotal=D(total),
            total=D(total),
            snapshot=snapshot(code, decimals),
            generated_at=datetime(2025, 12, 1, tzinfo=UTC),
        )
        if issued:
            invoice_states.issue_invoices(invoice_ids=[invoice.pk])
        return Invoice.objects.select_related("customer").get(pk=invoice.pk)

    return build


def fresh(invoice: Invoice) -> Invoice:
    return Invoice.objects.select_related("customer").get(pk=invoice.pk)


def signed_post(
    client: Client, event: dict[str, Any], *, at: int | None = None, secret: str = WEBHOOK_SECRET
) -> Any:
    payload = json.dumps(event)
    header = sign(payload, secret, at if at is not None else int(time.time()))
    return client.post(
        WEBHOOK, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )


def pay_on_stripe(fake: RunningFake, url: str, method: str = "card") -> list[dict[str, Any]]:
    """Press Pay on the fake's hosted page (no webhook endpoint set: the events are kept
    and returned, for the test to deliver)."""
    before = len(control(fake, "events")["data"])
    answer = requests.post(url + "/pay", data={"method": method}, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    return [d["event"] for d in control(fake, "events")["data"][before:]]


@pytest.fixture(autouse=True)
def solusio_down(settings: Any) -> None:
    """The invoices page's month-so-far preview asks SolusIO; here it answers nothing."""
    settings.SOLUSIO_API_URL = "http://127.0.0.1:9/api/v1"
    settings.SOLUSIO_API_TOKEN = "unused"
    settings.SOLUSIO_RETRY_MAX_ATTEMPTS = 1


def portal(customer: Customer) -> Client:
    user = User.objects.create_user(username=f"customer:{customer.pk}", password="x")
    Customer.objects.filter(pk=customer.pk).update(user=user)
    browser = Client()
    browser.force_login(user)
    return browser


# --- Amounts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "code", "minor"),
    [
        ("12.34", "USD", 1234),
        ("12.345", "USD", 1235),  # half-up to the cent
        ("12.3449", "EUR", 1234),
        ("1200", "JPY", 1200),  # zero-decimal: yen, not hundredths
        ("999.5", "JPY", 1000),
        ("500", "ISK", 50000),  # whole krónur, counted in hundredths
        ("1.2345", "KWD", 1230),  # thousandths, charged to the hundredth
    ],
)
def test_amounts_go_to_stripe_in_its_minor_unit(amount: str, code: str, minor: int) -> None:
    assert minor_units.to_minor(D(amount), code) == minor


@given(
    cents=st.integers(min_value=1, max_value=10**12),
    code=st.sampled_from(["USD", "EUR", "JPY", "ISK", "KWD"]),
)
def test_an_amount_in_stripes_unit_comes_back_exactly(cents: int, code: str) -> None:
    places = 0 if code in ("JPY", "ISK") else 2
    amount = D(cents).scaleb(-places)
    assert minor_units.from_minor(minor_units.to_minor(amount, code), code) == amount


# --- Checkout ----------------------------------------------------------------------------


def test_checkout_asks_for_the_open_balance_by_card(fake_stripe: RunningFake, make: Make) -> None:
    invoice = make("100.00")
    record_payment(
        customer_id=invoice.customer_id,
        amount=D("40.00"),
        currency="USD",
        method=PaymentMethod.BANK_TRANSFER,
        received_at=datetime.now(UTC),
        reference="BANK-1",
    )
    started = stripe_pay.start_checkout(fresh(invoice), return_url=RETURN)
    assert started.url == f"{fake_stripe.url}/checkout/{started.session_id}"
    (call,) = [c for c in fake_stripe.state.calls if c["path"] == "/v1/checkout/sessions"]
    params = call["params"]
    assert params["line_items"] == [
        {
            "quantity": "1",
            "price_data": {
                "currency": "usd",
                "unit_amount": "6000",  # the open balance, 60.00, in cents
                "product_data": {
                    "name": f"Invoice {invoice.display_number} ({invoice.period:%B %Y})"
                },
            },
        }
    ]
    assert params["payment_method_types"] == ["card"]
    assert params["metadata"] == {
        "invoice_id": str(invoice.pk),
        "customer_id": str(invoice.customer_id),
    }
    assert params["payment_intent_data"]["metadata"] == params["metadata"]
    assert params["client_reference_id"] == str(invoice.pk)
    assert params["success_url"] == RETURN + "?session_id={CHECKOUT_SESSION_ID}"
    assert params["cancel_url"] == RETURN + "?cancelled=1"
    assert params["customer_email"] == invoice.customer.email
    assert "setup_future_usage" not in params["payment_intent_data"]
    assert call["idempotency_key"].startswith(f"checkout-{invoice.pk}-")


def test_eur_adds_sepa_debit_and_jpy_is_zero_decimal(fake_stripe: RunningFake, make: Make) -> None:
    stripe_pay.start_checkout(make("25.50", "EUR"), return_url=RETURN)
    stripe_pay.start_checkout(make("1200", "JPY", decimals=0), return_url=RETURN)
    eur, jpy = [c["params"] for c in fake_stripe.state.calls]
    assert eur["payment_method_types"] == ["card", "sepa_debit"]
    assert eur["line_items"][0]["price_data"]["unit_amount"] == "2550"
    assert jpy["payment_method_types"] == ["card"]
    assert (
        jpy["line_items"][0]["price_data"]["currency"],
        jpy["line_items"][0]["price_data"]["unit_amount"],
    ) == ("jpy", "1200")


def test_a_double_click_makes_one_session_and_a_new_balance_another(
    fake_stripe: RunningFake, make: Make
) -> None:
    invoice = make("100.00")
    first = stripe_pay.start_checkout(invoice, return_url=RETURN)
    again = stripe_pay.start_checkout(fresh(invoice), return_url=RETURN)
    assert again.session_id == first.session_id
    assert len(fake_stripe.state.sessions) == 1
    record_payment(
        customer_id=invoice.customer_id,
        amount=D("10.00"),
        currency="USD",
        method=PaymentMethod.MANUAL,
        received_at=datetime.now(UTC),
    )
    third = stripe_pay.start_checkout(fresh(invoice), return_url=RETURN)
    assert third.session_id != first.session_id


def test_nothing_to_pay_and_stripe_refusing_are_said_plainly(
    fake_stripe: RunningFake, make: Make
) -> None:
    paid = make("10.00")
    invoice_states.mark_paid(invoice_id=paid.pk)
    with pytest.raises(stripe_pay.CheckoutUnavailable, match="nothing left to pay"):
        stripe_pay.start_checkout(fresh(paid), return_url=RETURN)
    with pytest.raises(stripe_pay.CheckoutUnavailable, match="not available right now"):
        stripe_pay.start_checkout(make("0.10"), return_url=RETURN)  # below Stripe's minimum


# --- The portal --------------------------------------------------------------------------


def test_pay_now_redirects_the_customer_to_checkout_for_their_own_invoice(
    fake_stripe: RunningFake, make: Make
) -> None:
    invoice = make("30.00")
    theirs = make("20.00")
    browser = portal(invoice.customer)
    page = browser.get("/account/invoices/")
    assert page.status_code == 200
    assert f'action="/account/invoices/{invoice.pk}/pay/"' in page.content.decode()
    answer = browser.post(f"/account/invoices/{invoice.pk}/pay/")
    assert answer.status_code == 303
    assert answer["Location"].startswith(f"{fake_stripe.url}/checkout/cs_test_")
    assert browser.post(f"/account/invoices/{theirs.pk}/pay/").status_code == 404
    draft = make("5.00", customer=invoice.customer, issued=False)
    assert browser.post(f"/account/invoices/{draft.pk}/pay/").status_code == 404
    assert browser.get(f"/account/invoices/{invoice.pk}/pay/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(User.objects.get(username=f"customer:{invoice.customer_id}"))
    assert strict.post(f"/account/invoices/{invoice.pk}/pay/").status_code == 403
    anonymous = Client().post(f"/account/invoices/{invoice.pk}/pay/")
    assert anonymous.status_code == 302
    assert "/account/login/" in anonymous["Location"]


def test_the_signed_pay_link_pays_that_invoice_only_and_signs_nobody_in(
    fake_stripe: RunningFake, make: Make, settings: Any
) -> None:
    settings.BRIDGE_PUBLIC_URL = "https://billing.example.test"
    invoice = make("30.00")
    link = legal.payment_link(legal.details_of(invoice), invoice)
    assert link.startswith("https://billing.example.test/account/pay/")
    path = link.removeprefix("https://billing.example.test")
    visitor = Client()
    page = visitor.get(path)
    assert page.status_code == 200
    text = page.content.decode()
    assert invoice.display_number in text
    assert "Pay now" in text
    assert "Sign out" not in text
    assert not fake_stripe.state.calls  # opening the link starts nothing
    answer = visitor.post(path)
    assert answer.status_code == 303
    assert "/checkout/cs_test_" in answer["Location"]
    assert "_auth_user_id" not in visitor.session
    (call,) = fake_stripe.state.calls
    assert call["params"]["success_url"].startswith(link + "?session_id=")
    assert visitor.get(path[:-3] + "xx/").status_code == 404  # tampered
    # The e-mail carries it.
    from usage.emails import invoice_message

    assert link in str(invoice_message(invoice).body)


# --- The webhook -------------------------------------------------------------------------


def event(
    type_: str = "customer.created", obj: dict[str, Any] | None = None, id_: str = "evt_1"
) -> dict[str, Any]:
    return {
        "id": id_,
        "object": "event",
        "api_version": "2025-10-29.clover",
        "created": int(time.time()),
        "data": {"object": obj or {"id": "cus_1", "object": "customer"}},
        "livemode": False,
        "type": type_,
    }


def test_signatures_good_bad_stale_and_a_replay(fake_stripe: RunningFake, client: Client) -> None:
    good = signed_post(client, event())
    assert (good.status_code, good.json()) == (200, {"received": True, "duplicate": False})
    bad = signed_post(client, event(id_="evt_2"), secret="whsec_someone_else")
    assert bad.status_code == 400
    assert bad.json() == {
        "error": {
            "code": "bad_signature",
            "message": "The Stripe-Signature header does not verify.",
        }
    }
    stale = signed_post(client, event(id_="evt_3"), at=int(time.time()) - 301)
    assert (stale.status_code, stale.json()["error"]["code"]) == (400, "bad_signature")
    unsigned = client.post(
        WEBHOOK, data=json.dumps(event(id_="evt_4")), content_type="application/json"
    )
    assert unsigned.status_code == 400
    replay = signed_post(client, event())
    assert (replay.status_code, replay.json()) == (200, {"received": True, "duplicate": True})
    assert list(StripeEvent.objects.values_list("event_id", "state")) == [
        ("evt_1", StripeEventState.IGNORED)
    ]
    garbage = client.post(
        WEBHOOK,
        data="not json",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign("not json", WEBHOOK_SECRET, int(time.time())),
    )
    assert (garbage.status_code, garbage.json()["error"]["code"]) == (400, "bad_payload")


def test_a_card_payment_marks_the_invoice_paid_once_however_often_stripe_tells(
    fake_stripe: RunningFake, make: Make, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = make("42.50")
    started = stripe_pay.start_checkout(invoice, return_url=RETURN)
    events = pay_on_stripe(fake_stripe, started.url)
    assert [e["type"] for e in events] == ["checkout.session.completed", "payment_intent.succeeded"]
    for delivery in [*events, *events]:  # each twice, as Stripe's retries do
        with django_capture_on_commit_callbacks(execute=True):
            assert signed_post(client, delivery).status_code == 200
    (payment,) = Payment.objects.all()
    intent = fake_stripe.state.sessions[started.session_id]["payment_intent"]
    assert (payment.method, payment.reference, payment.amount, payment.currency) == (
        PaymentMethod.CARD,
        intent,
        D("42.50"),
        "USD",
    )
    invoice = fresh(invoice)
    assert invoice.status == InvoiceStatus.PAID
    assert invoice_balance(invoice) == 0
    states = dict(StripeEvent.objects.values_list("type", "note"))
    assert states["checkout.session.completed"] == f"recorded as payment {payment.pk}"
    assert states["payment_intent.succeeded"] == f"already recorded as payment {payment.pk}"
    assert StripeEvent.objects.count() == 2


def test_sepa_is_paid_when_the_debit_settles_and_a_returned_one_is_kept_for_staff(
    fake_stripe: RunningFake, make: Make, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = make("80.00", "EUR")
    other = make("15.00", "EUR")

    def deliver(events: list[dict[str, Any]]) -> None:
        for delivery in events:
            with django_capture_on_commit_callbacks(execute=True):
                assert signed_post(client, delivery).status_code == 200

    started = stripe_pay.start_checkout(invoice, return_url=RETURN)
    deliver(pay_on_stripe(fake_stripe, started.url, "sepa_debit"))
    assert not Payment.objects.exists()  # accepted, not yet paid
    assert fresh(invoice).status == InvoiceStatus.ISSUED
    intent = fake_stripe.state.sessions[started.session_id]["payment_intent"]
    before = len(control(fake_stripe, "events")["data"])
    control(fake_stripe, f"payment_intents/{intent}/settle", {"outcome": "succeeded"})
    deliver([d["event"] for d in control(fake_stripe, "events")["data"][before:]])
    (payment,) = Payment.objects.all()
    assert (payment.method, payment.amount, fresh(invoice).status) == (
        PaymentMethod.SEPA_DEBIT,
        D("80.00"),
        InvoiceStatus.PAID,
    )

    started = stripe_pay.start_checkout(other, return_url=RETURN)
    deliver(pay_on_stripe(fake_stripe, started.url, "sepa_debit"))
    intent = fake_stripe.state.sessions[started.session_id]["payment_intent"]
    before = len(control(fake_stripe, "events")["data"])
    control(fake_stripe, f"payment_intents/{intent}/settle", {"outcome": "failed"})
    deliver([d["event"] for d in control(fake_stripe, "events")["data"][before:]])
    failed = StripeEvent.objects.filter(state=StripeEventState.FAILED)
    assert sorted(failed.values_list("type", flat=True)) == [
        "checkout.session.async_payment_failed",
        "payment_intent.payment_failed",
    ]
    assert all(row.invoice_id == other.pk for row in failed)
    assert "insufficient funds" in failed.get(type="payment_intent.payment_failed").note
    assert Payment.objects.count() == 1
    assert fresh(other).status == InvoiceStatus.ISSUED


# --- Automatic collection ----------------------------------------------------------------


@pytest.fixture
def auto_collect() -> None:
    row = BillingSettings.load()
    row.auto_collect = True
    row.save()


def test_checkout_saves_the_method_when_collection_is_on(
    fake_stripe: RunningFake,
    make: Make,
    client: Client,
    auto_collect: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = make("12.00")
    started = stripe_pay.start_checkout(invoice, return_url=RETURN)
    (call,) = fake_stripe.state.calls
    assert call["params"]["payment_intent_data"]["setup_future_usage"] == "off_session"
    assert call["params"]["customer_creation"] == "always"
    for delivery in pay_on_stripe(fake_stripe, started.url):
        with django_capture_on_commit_callbacks(execute=True):
            signed_post(client, delivery)
    saved = StripeCustomer.objects.get(customer_id=invoice.customer_id)
    assert saved.stripe_customer_id.startswith("cus_test_")
    assert saved.payment_method_id.startswith("pm_test_")
    assert saved.payment_method_type == "card"
    # The next invoice is charged to it when issued.
    with django_capture_on_commit_callbacks(execute=True):
        second = make("30.00", customer=invoice.customer)
    assert fresh(second).status == InvoiceStatus.PAID
    (attempt,) = CollectionAttempt.objects.all()
    assert (attempt.state, attempt.amount) == (CollectionState.SUCCEEDED, D("30.00"))


def saved_method(customer: Customer, method: str) -> None:
    StripeCustomer.objects.update_or_create(
        customer=customer,
        defaults={
            "stripe_customer_id": f"cus_test_{customer.pk}",
            "payment_method_id": method,
            "payment_method_type": "card",
            "updated_at": datetime.now(UTC),
        },
    )


def test_a_declined_charge_is_retried_on_schedule_until_it_succeeds(
    fake_stripe: RunningFake, make: Make, auto_collect: None, settings: Any
) -> None:
    settings.STRIPE_COLLECT_RETRY_DAYS = [1, 3]
    customer = Customer.objects.create(email="dee@example.test", currency=currency("USD", 2))
    fake_stripe.state.customers[f"cus_test_{customer.pk}"] = {"id": f"cus_test_{customer.pk}"}
    saved_method(customer, "pm_card_chargeDeclined")
    invoice = make("50.00", customer=customer)
    now = datetime.now(UTC)
    first = collect.collect(invoice_id=invoice.pk, now=now)
    assert first is not None
    assert (first.attempt, first.state) == (1, CollectionState.FAILED)
    assert "card_declined" in first.error
    assert first.payment_intent_id.startswith("pi_test_")
    assert first.next_attempt_at == now + timedelta(days=1)
    assert collect.collect(invoice_id=invoice.pk, now=now + timedelta(hours=23)) is None
    second = collect.collect(invoice_id=invoice.pk, now=now + timedelta(days=1))
    assert second is not None
    assert (second.attempt, second.state) == (2, CollectionState.FAILED)
    assert second.next_attempt_at == now + timedelta(days=4)
    saved_method(customer, "pm_card_visa")  # the customer updated their card
    assert collect.sweep(now=now + timedelta(days=4)) == 1
    assert list(CollectionAttempt.objects.order_by("attempt").values_list("state", flat=True)) == [
        CollectionState.FAILED,
        CollectionState.FAILED,
        CollectionState.SUCCEEDED,
    ]
    assert fresh(invoice).status == InvoiceStatus.PAID
    (payment,) = Payment.objects.all()
    assert (payment.method, payment.amount) == (PaymentMethod.CARD, D("50.00"))
    assert collect.sweep(now=now + timedelta(days=30)) == 0
    # Every call had its own key: one per invoice and attempt.
    keys = [
        c["idempotency_key"] for c in fake_stripe.state.calls if c["path"] == "/v1/payment_intents"
    ]
    assert keys == [f"collect-{invoice.pk}-1", f"collect-{invoice.pk}-2", f"collect-{invoice.pk}-3"]


def test_retries_stop_when_they_run_out_or_the_customer_must_act(
    fake_stripe: RunningFake, make: Make, auto_collect: None, settings: Any
) -> None:
    settings.STRIPE_COLLECT_RETRY_DAYS = [1]
    customer = Customer.objects.create(email="eve@example.test", currency=currency("USD", 2))
    saved_method(customer, "pm_card_chargeDeclined")
    invoice = make("50.00", customer=customer)
    now = datetime.now(UTC)
    collect.collect(invoice_id=invoice.pk, now=now)
    last = collect.collect(invoice_id=invoice.pk, now=now + timedelta(days=1))
    assert last is not None
    assert last.next_attempt_at is None
    assert collect.sweep(now=now + timedelta(days=60)) == 0
    other = Customer.objects.create(email="fay@example.test", currency=currency("USD", 2))
    saved_method(other, "pm_card_authenticationRequired")
    needs_3ds = collect.collect(invoice_id=make("20.00", customer=other).pk, now=now)
    assert needs_3ds is not None
    assert (needs_3ds.state, needs_3ds.next_attempt_at) == (CollectionState.FAILED, None)
    assert "authentication_required" in needs_3ds.error


def test_stripe_unreachable_leaves_the_attempt_pending_for_the_same_key(
    fake_stripe: RunningFake, make: Make, auto_collect: None, settings: Any
) -> None:
    customer = Customer.objects.create(email="gus@example.test", currency=currency("USD", 2))
    saved_method(customer, "pm_card_visa")
    invoice = make("50.00", customer=customer)
    now = datetime.now(UTC)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens
    attempt = collect.collect(invoice_id=invoice.pk, now=now)
    assert attempt is not None
    assert attempt.state == CollectionState.PENDING
    settings.STRIPE_API_BASE = fake_stripe.url
    assert collect.sweep(now=now + collect.UNKNOWN_OUTCOME_RETRY) == 1
    (row,) = CollectionAttempt.objects.all()
    assert (row.attempt, row.state) == (1, CollectionState.SUCCEEDED)
    assert fresh(invoice).status == InvoiceStatus.PAID


# --- Off, and secrets --------------------------------------------------------------------


def test_with_stripe_off_nothing_shows_it(make: Make, settings: Any, client: Client) -> None:
    settings.STRIPE_SECRET_KEY = settings.STRIPE_WEBHOOK_SECRET = ""
    settings.BRIDGE_PUBLIC_URL = "https://billing.example.test"
    invoice = make("30.00")
    page = portal(invoice.customer).get("/account/invoices/")
    assert page.status_code == 200
    assert "Pay now" not in page.content.decode()
    assert signed_post(client, event()).status_code == 404
    assert not StripeEvent.objects.exists()
    assert client.get(stripe_pay.pay_path(invoice.pk)).status_code == 404
    assert legal.payment_link(legal.details_of(invoice), invoice) == ""
    assert portal_post_404(invoice)


def portal_post_404(invoice: Invoice) -> bool:
    browser = Client()
    browser.force_login(User.objects.get(username=f"customer:{invoice.customer_id}"))
    return browser.post(f"/account/invoices/{invoice.pk}/pay/").status_code == 404


def test_secrets_never_reach_the_logs(
    fake_stripe: RunningFake,
    make: Make,
    client: Client,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    invoice = make("42.50")
    started = stripe_pay.start_checkout(invoice, return_url=RETURN)
    for delivery in pay_on_stripe(fake_stripe, started.url):
        with django_capture_on_commit_callbacks(execute=True):
            signed_post(client, delivery)
    signed_post(client, event(id_="evt_bad"), secret="whsec_wrong")
    assert fresh(invoice).status == InvoiceStatus.PAID
    assert caplog.records  # stripe's own request lines were captured
    assert SECRET_KEY not in caplog.text
    assert WEBHOOK_SECRET not in caplog.text


# --- Staff -------------------------------------------------------------------------------


def test_staff_read_stripe_events_and_collections_with_view_permission_only() -> None:
    from pricing.tests.api_helpers import make_user

    models = [StripeEvent, CollectionAttempt, StripeCustomer]
    nobody = Client()
    nobody.force_login(make_user("nobody"))
    viewer = Client()
    viewer.force_login(make_user("viewer", models=models, actions=["view"]))
    keeper = Client()
    keeper.force_login(make_user("keeper", models=models))
    for name in ("stripeevent", "collectionattempt", "stripecustomer"):
        url = f"/admin/payments/{name}/"
        assert nobody.get(url).status_code == 403
        assert viewer.get(url).status_code == 200
        assert keeper.get(url + "add/").status_code == 403  # nobody adds these by hand
    customer = Customer.objects.create(email="hal@example.test", currency=currency("USD", 2))
    saved_method(customer, "pm_card_visa")
    delete = f"/admin/payments/stripecustomer/{customer.pk}/delete/"
    assert viewer.get(delete).status_code == 403
    assert keeper.post(delete, {"post": "yes"}).status_code == 302
    assert not StripeCustomer.objects.exists()


def test_check_says_when_stripe_is_half_configured(settings: Any) -> None:
    from payments.checks import check_stripe_settings

    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = SECRET_KEY, ""
    assert [w.id for w in check_stripe_settings()] == ["payments.W001"]
    settings.STRIPE_WEBHOOK_SECRET, settings.BRIDGE_PUBLIC_URL = WEBHOOK_SECRET, ""
    assert [w.id for w in check_stripe_settings()] == ["payments.W002"]
    settings.BRIDGE_PUBLIC_URL = "https://billing.example.test"
    assert check_stripe_settings() == []


def test_the_pdf_carries_the_pay_link(fake_stripe: RunningFake, make: Make, settings: Any) -> None:
    import io
    from pathlib import Path

    import pdfplumber

    from usage.einvoice.documents import invoice_pdf

    settings.BRIDGE_PUBLIC_URL = "https://billing.example.test"
    invoice = make("30.00")
    body = invoice_pdf(invoice)
    with pdfplumber.open(io.BytesIO(body)) as doc:
        links = [link["uri"] for page in doc.pages for link in page.hyperlinks]
        text = "".join(page.extract_text() or "" for page in doc.pages)
    link = stripe_pay.pay_link(invoice)
    assert link in links
    assert "Pay online: https://billing.example.test/account/pay/" in text
    out = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "stripe-invoice.pdf"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(body)  # for a look (pdftoppm), as the PDF tests do


def test_an_event_stripe_could_not_be_asked_about_waits_for_the_sweep(
    fake_stripe: RunningFake,
    make: Make,
    client: Client,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from payments import tasks

    invoice = make("42.50")
    started = stripe_pay.start_checkout(invoice, return_url=RETURN)
    completed, _ = pay_on_stripe(fake_stripe, started.url)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # Stripe unreachable while the task runs
    assert signed_post(client, completed).status_code == 200  # stored; its task not run
    with pytest.raises(stripe_pay.Transient):
        stripe_pay.process_event(completed["id"])
    row = StripeEvent.objects.get(event_id=completed["id"])
    assert row.state == StripeEventState.RECEIVED
    assert not Payment.objects.exists()
    settings.STRIPE_API_BASE = fake_stripe.url
    assert tasks.stripe_sweep() == 0  # too recent: its own retry is still coming
    StripeEvent.objects.filter(pk=row.pk).update(
        received_at=datetime.now(UTC) - timedelta(minutes=3)
    )
    assert tasks.stripe_sweep() == 1  # eager: processed right here
    row.refresh_from_db()
    assert row.state == StripeEventState.PROCESSED
    assert fresh(invoice).status == InvoiceStatus.PAID


def test_pay_now_again_after_paying_says_it_is_being_processed(
    fake_stripe: RunningFake, make: Make
) -> None:
    invoice = make("20.00")
    started = stripe_pay.start_checkout(invoice, return_url=RETURN)
    pay_on_stripe(fake_stripe, started.url)  # paid; the webhook has not arrived
    again = stripe_pay.start_checkout(fresh(invoice), return_url=RETURN)
    assert again.processing
    assert again.url == f"{RETURN}?session_id={started.session_id}"
    assert len(fake_stripe.state.sessions) == 1
    # An expired session (and its key still remembered) gets a new one.
    fake_stripe.state.sessions[started.session_id].update(status="open", expires_at=0)
    renewed = stripe_pay.start_checkout(fresh(invoice), return_url=RETURN)
    assert not renewed.processing
    assert renewed.session_id != started.session_id


def test_billing_settings_offer_automatic_collection_only_with_stripe_on(
    settings: Any, admin_client: Client
) -> None:
    settings.STRIPE_SECRET_KEY = settings.STRIPE_WEBHOOK_SECRET = ""
    page = admin_client.get("/admin/usage/billingsettings/", follow=True)
    assert page.status_code == 200
    assert 'name="auto_issue"' in page.content.decode()
    assert 'name="auto_collect"' not in page.content.decode()
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = SECRET_KEY, WEBHOOK_SECRET
    page = admin_client.get("/admin/usage/billingsettings/", follow=True)
    assert 'name="auto_collect"' in page.content.decode()


def test_the_pay_link_opens_in_the_customers_language(
    fake_stripe: RunningFake, make: Make, settings: Any
) -> None:
    settings.BRIDGE_PUBLIC_URL = "https://billing.example.test"
    invoice = make("30.00", "EUR")
    Customer.objects.filter(pk=invoice.customer_id).update(language="de")
    invoice = fresh(invoice)
    path = legal.payment_link(legal.details_of(invoice), invoice).removeprefix(
        "https://billing.example.test"
    )
    visitor = Client(HTTP_ACCEPT_LANGUAGE="en")  # the reader's browser loses to the invoice
    text = visitor.get(path).content.decode().replace("\xa0", " ")
    for field in (
        f"Rechnung {invoice.display_number} für Februar 2025",
        "<th>Noch zu zahlen</th>",
        "Jetzt bezahlen",
        "Per Karte oder SEPA-Lastschrift, auf der sicheren Seite von Stripe.",
    ):
        assert field in text, field
    assert "Pay now" not in text
    assert visitor.post(path).status_code == 303
    (call,) = fake_stripe.state.calls
    assert call["params"]["locale"] == "de"
    assert call["params"]["line_items"][0]["price_data"]["product_data"]["name"] == (
        f"Rechnung {invoice.display_number} (Februar 2025)"
    )
    cancelled = visitor.get(path + "?cancelled=1").content.decode()
    assert "Die Zahlung wurde abgebrochen; es wurde nichts belastet." in cancelled
