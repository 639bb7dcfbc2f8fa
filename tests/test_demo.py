"""The demo is useful: with the simulator as the Procfile starts it, the demo customers'
SolusIO users own servers, so closing last month produces real invoices for them."""

import argparse
import os
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from solusio.simulator.cli import add_arguments, build_simulator
from solusio.simulator.server import start_in_thread
from usage.models import Invoice
from usage.rules import previous_period
from usage.tests.test_money_display import pdf_text
from users.models import Customer, SolusioAccount
from users.tests.conftest import deliver_all

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db


def procfile_simulator_options() -> dict[str, Any]:
    """The simulator's options exactly as the Procfile gives them (on a free port)."""
    (line,) = [
        line
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith("simulator:")
    ]
    words = shlex.split(line.partition(":")[2])
    assert words[:3] == ["python", "-m", "solusio.simulator"]
    env = {"SIMULATOR_PORT": "0", "SOLUSIO_API_TOKEN": "demo-token"}
    args = [os.path.expandvars(w.replace("${SIMULATOR_PORT:-8090}", "0")) for w in words[3:]]
    args = [a.replace("${SOLUSIO_API_TOKEN}", env["SOLUSIO_API_TOKEN"]) for a in args]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cwd = Path.cwd()
    os.chdir(ROOT)  # the Procfile's paths are relative to the checkout, as honcho runs it
    try:
        options = vars(parser.parse_args(args))
        options["sim"] = build_simulator(options)
    finally:
        os.chdir(cwd)
    return options


@pytest.fixture
def demo_simulator(settings: Any) -> Iterator[Any]:
    options = procfile_simulator_options()
    running = start_in_thread(options["sim"])
    settings.SOLUSIO_API_URL = running.url
    settings.SOLUSIO_API_TOKEN = options["token"]
    settings.SOLUSIO_VERIFY_TLS = False
    settings.SOLUSIO_RETRY_MAX_ATTEMPTS = 1
    try:
        yield running.sim
    finally:
        running.stop()


def test_the_demo_simulator_seeds_the_demo_customers_as_its_users() -> None:
    sim = procfile_simulator_options()["sim"]
    users = {u["billing_user_id"]: u["email"] for u in sim.state.users.values()}
    assert users == {1: "jane@example.co.uk", 2: "john@example.com"}
    # Every server slot belongs to one of them.
    assert sim.state.timeline.slots == 9
    assert sim.state.timeline.users == 2


def test_closing_last_month_in_the_demo_makes_real_invoices(demo_simulator: Any) -> None:
    call_command("load_demo_data", stdout=StringIO())
    deliver_all()
    for customer in Customer.objects.all():
        account = SolusioAccount.objects.get(pk=customer.pk)
        user = demo_simulator.state.users[account.solusio_user_id]
        # Linked by e-mail to the seeded user, never a second one.
        assert (user["email"], user["billing_user_id"]) == (customer.email, customer.pk)
    assert len(demo_simulator.state.users) == 2

    period = previous_period(datetime.now(UTC), "UTC")
    out = StringIO()
    call_command("close_cycle", "--period", period.label, stdout=out)
    invoices = {i.customer_id: i for i in Invoice.objects.prefetch_related("lines")}
    assert set(invoices) == {1, 2}, out.getvalue()
    jane, john = invoices[1], invoices[2]
    assert jane.currency == "GBP"
    assert john.currency == "USD"
    for invoice in (jane, john):
        assert invoice.total > 0
        assert invoice.lines.count() >= 4
    # Jane's London taxes and discount apply; John has neither.
    assert jane.total > jane.subtotal
    assert john.total == john.subtotal
    # Complete invoices: the seller, each customer's address, Jane's VAT id, John's reason.
    jane_pdf, john_pdf = (pdf_text(invoice) for invoice in (jane, john))
    for text in (jane_pdf, john_pdf):
        assert "Example Hosting Ltd" in text
        assert "VAT id: GB123456789" in text
        assert "IBAN GB33 BUKB 2020 1555 5555 55" in text
    assert "221B Baker Street" in jane_pdf
    assert "VAT id: GB987654321" in jane_pdf
    assert "350 Fifth Avenue" in john_pdf
    assert "No tax charged: Services supplied outside the UK" in john_pdf


def test_the_demo_usage_is_the_same_on_every_start() -> None:
    period = previous_period(datetime.now(UTC), "UTC")
    lo, hi = int(period.start.timestamp()), int(period.end.timestamp())

    def servers() -> list[tuple[int, int, int, int, int | None, int]]:
        timeline = procfile_simulator_options()["sim"].state.timeline
        return [
            (s.server_id, s.user_id, s.plan_id, s.start, s.end, s.has_ip)
            for slot in range(timeline.slots)
            for s in timeline.segments(slot, lo, hi)
        ]

    first = servers()
    assert first == servers()
    assert {user for _, user, *_ in first} == {1, 2}
