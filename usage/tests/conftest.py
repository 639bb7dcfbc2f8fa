"""Fixtures for the cycle close: a simulator with hand-made servers only, and customers."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pricing.models import Currency
from solusio.client import SolusIOClient
from solusio.testing import SimulatorInfo, fast_client, running_simulator
from usage import build, close
from usage.models import Invoice
from usage.rules import Period, period_of_month
from users.models import Customer

# The simulator's clock: well after every period the tests close.
SIM_NOW = int(datetime(2029, 1, 1, tzinfo=UTC).timestamp())


@pytest.fixture
def sim() -> Iterator[SimulatorInfo]:
    """Six SolusIO users (billing ids 1-6) and no seeded servers: each test adds the exact
    server timelines it bills."""
    with running_simulator(users=6, servers=0, now=SIM_NOW) as info:
        yield info


@pytest.fixture
def client(sim: SimulatorInfo) -> Iterator[SolusIOClient]:
    with fast_client(sim) as c:
        yield c


@pytest.fixture
def customers(usd: Currency) -> list[Customer]:
    """Customers 1-3 in USD; SolusIO users 4-6 have no customer here (their usage is orphan)."""
    return [
        Customer.objects.create(id=i, email=f"customer{i}@example.test", currency=usd)
        for i in (1, 2, 3)
    ]


@pytest.fixture
def add_server(sim: SimulatorInfo) -> Callable[..., dict[str, Any]]:
    def add(
        user: int,
        plan: int,
        created: datetime,
        deleted: datetime | None = None,
        resizes: list[tuple[datetime, int]] | None = None,
        ip: bool = False,
    ) -> dict[str, Any]:
        return sim.control.add_server(
            user_id=user,
            plan_id=plan,
            created_at=created.isoformat(),
            deleted_at=deleted.isoformat() if deleted else None,
            resizes=[{"at": at.isoformat(), "plan_id": p} for at, p in resizes or []],
            additional_ip=ip,
        )

    return add


def money(text: str) -> Decimal:
    return Decimal(text)


@pytest.fixture
def drafts(
    client: SolusIOClient, customers: list[Customer], add_server: Callable[..., dict[str, Any]]
) -> list[Invoice]:
    """October 2026 closed without issuing: drafts for customers 1-3, two lines each."""
    october = datetime(2026, 10, 1, tzinfo=UTC)
    for user in (1, 2, 3):
        add_server(user, 1, october - timedelta(hours=24))
        add_server(user, 2, october + timedelta(hours=24), october + timedelta(hours=100))
    close.close_cycle(
        period=period_of_month(2026, 10, "UTC"),
        client=client,
        now=datetime(2029, 1, 1, tzinfo=UTC),
        auto_issue=False,
    )
    return list(Invoice.objects.order_by("customer_id"))


class BuildBatchHook:
    """Calls a function after each committed build batch with how many customers this
    process has built so far (crash-and-rerun tests raise or kill there)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hook: Callable[[int], None] | None = None
        self.done = 0
        write = build._write_batch

        def writing(period: Period, drafts: build.Built, summary: Any, now: datetime) -> None:
            write(period, drafts, summary, now)
            self.done += len(drafts)
            if self.hook is not None:
                self.hook(self.done)

        monkeypatch.setattr(build, "_write_batch", writing)

    def __call__(self, hook: Callable[[int], None] | None) -> None:
        """Call `hook` from now on (None: stop), counting from zero again."""
        self.hook, self.done = hook, 0


@pytest.fixture
def after_build_batch(monkeypatch: pytest.MonkeyPatch) -> BuildBatchHook:
    return BuildBatchHook(monkeypatch)


class CloseQueue:
    """The close queue without a broker: a submitted close's stage tasks are kept as they
    are sent and run (eagerly, retries included) in this process when asked. Work that
    sends them runs inside `commits()`, whose commit callbacks (which send them) run
    at its end, in a test whose transaction never commits."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capture: Any) -> None:
        from usage import tasks

        self.capture = capture
        self.messages: list[tuple[Any, tuple[Any, ...]]] = []
        for task in (tasks.close_pull, tasks.close_shard, tasks.close_issue):
            monkeypatch.setattr(
                task,
                "apply_async",
                lambda args, task=task, **options: self.messages.append((task, tuple(args))),
            )

    def commits(self) -> Any:
        return self.capture(execute=True)

    def deliver_one(self) -> Any:
        """Run the oldest message; its eager result."""
        task, args = self.messages.pop(0)
        with self.commits():
            return task.apply(args)

    def deliver_all(self) -> None:
        while self.messages:
            self.deliver_one()


@pytest.fixture
def close_queue(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> CloseQueue:
    return CloseQueue(monkeypatch, django_capture_on_commit_callbacks)


@pytest.fixture
def close_tasks_here(close_queue: CloseQueue) -> Callable[[], Any]:
    """Runs what the wrapped code submits, to the end of the close, when it exits."""

    @contextmanager
    def here() -> Iterator[None]:
        with close_queue.commits():
            yield
        close_queue.deliver_all()

    return here
