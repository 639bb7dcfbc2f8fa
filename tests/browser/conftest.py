"""Real-browser tests: Playwright drives Debian's chromium (bin/test installs it; no
browser is ever downloaded) against a live server and a SolusIO simulator."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from playwright.sync_api import BrowserContext, Page, sync_playwright
from pytest_django.live_server_helper import LiveServer

from solusio.testing import SimulatorInfo, fast_client, running_simulator
from usage import close
from usage.models import Invoice
from usage.rules import period_of_month
from users import services, sync
from users.models import Customer, SolusioAccount, SyncRecord, SyncRecordState

CHROMIUM = Path("/usr/bin/chromium")
# The machine's network is closed: without these, chromium keeps trying its own services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "correct-horse-battery-staple"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BrowserContext]:
    """A headless chromium with a fresh profile of its own."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run bin/test, which installs Debian's chromium")
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # are still plain synchronous code (the live server answers from its own thread).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # Database connections are kept per context, and code inside sync_playwright runs in
    # another one: close what each side opened, or a connection outlives the test database.
    connections.close_all()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            viewport={"width": 1100, "height": 800},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            connections.close_all()


@pytest.fixture
def page(browser: BrowserContext) -> Page:
    return browser.pages[0] if browser.pages else browser.new_page()


@pytest.fixture
def shot() -> Callable[[Page, str], Path]:
    """Save a screenshot of the page as var/screenshots/<name>.png (gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@dataclass
class Bridge:
    url: str  # the live server
    sim: SimulatorInfo

    def customer(self, email: str, **fields: Any) -> Customer:
        """A customer with a portal password, delivered to the simulator."""
        from pricing.models import Currency

        usd = Currency.objects.get(code="USD")
        customer = services.create_customer(email=email, currency=usd, **fields)
        services.set_customer_password(customer_id=customer.pk, password=PASSWORD)
        for _ in range(10):
            pending = SyncRecord.objects.filter(
                customer_id=customer.pk, state=SyncRecordState.PENDING
            )
            if not pending.exists():
                break
            sync.deliver_pending(customer_id=customer.pk)
        account = SolusioAccount.objects.get(customer_id=customer.pk)
        assert account.solusio_user_id is not None, "not delivered to the simulator"
        return Customer.objects.get(pk=customer.pk)

    def solusio_user_id(self, customer: Customer) -> int:
        user_id = SolusioAccount.objects.get(customer_id=customer.pk).solusio_user_id
        assert user_id is not None
        return user_id

    def october_draft(self, customer: Customer) -> Invoice:
        """A server on the whole of October 2026, and that month closed without issuing."""
        october = datetime(2026, 10, 1, tzinfo=UTC)
        self.sim.control.add_server(
            user_id=self.solusio_user_id(customer),
            plan_id=1,
            created_at=(october - timedelta(days=1)).isoformat(),
        )
        with fast_client(self.sim) as client:
            close.close_cycle(
                period=period_of_month(2026, 10, "UTC"), client=client, auto_issue=False
            )
        return Invoice.objects.get(customer=customer)


@pytest.fixture
def bridge(
    live_server: LiveServer, transactional_db: None, settings: Any, usd: Any
) -> Iterator[Bridge]:
    """The live server pointed at a fresh simulator; tasks run where they are sent."""
    from bridge.celery import app

    with running_simulator(users=0, servers=0) as sim:
        settings.SOLUSIO_API_URL = sim.url
        settings.SOLUSIO_API_TOKEN = sim.token
        settings.SOLUSIO_VERIFY_TLS = False
        settings.SOLUSIO_RETRY_MAX_ATTEMPTS = 1
        settings.SOLUSIO_LOGIN_URL_TEMPLATE = ""  # SolusIO's own route: the simulator's
        previous = app.conf.task_always_eager
        app.conf.task_always_eager = True
        try:
            yield Bridge(url=live_server.url, sim=sim)
        finally:
            app.conf.task_always_eager = previous
