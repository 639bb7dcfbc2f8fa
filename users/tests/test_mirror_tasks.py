"""Beat mirrors limit groups and plans from SolusIO every hour: the tasks run against the
simulator, are idempotent, and retry transient failures with backoff."""

from typing import Any

import pytest
from django.conf import settings

from pricing import tasks as pricing_tasks
from pricing.models import Plan
from solusio.errors import ServerError, ValidationFailed
from solusio.testing import SimulatorInfo
from users import tasks
from users.models import LimitGroup

pytestmark = pytest.mark.django_db


def test_beat_runs_both_mirrors_every_hour() -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE
    by_task = {entry["task"]: entry["schedule"] for entry in schedule.values()}
    for name in ("users.tasks.mirror_limit_groups", "pricing.tasks.mirror_plans"):
        crontab = by_task[name]
        assert crontab.hour == set(range(24)), name
        assert len(crontab.minute) == 1, name
    # The tasks are registered under those names with the worker's app.
    from bridge.celery import app

    app.loader.import_default_modules()
    assert "users.tasks.mirror_limit_groups" in app.tasks
    assert "pricing.tasks.mirror_plans" in app.tasks


def test_the_limit_group_task_mirrors_and_is_idempotent(sim: SimulatorInfo) -> None:
    assert tasks.mirror_limit_groups.apply().get() == 3
    first = {g.pk: (g.name, g.vms_limit, g.vms_enabled) for g in LimitGroup.objects.all()}
    assert first[1] == ("Default", 5, True)
    sim.control.simulator.state.limit_groups[2]["name"] = "Unlimited (renamed)"  # type: ignore[union-attr]
    assert tasks.mirror_limit_groups.apply().get() == 3
    assert tasks.mirror_limit_groups.apply().get() == 3
    assert LimitGroup.objects.count() == 3
    assert LimitGroup.objects.get(pk=2).name == "Unlimited (renamed)"


def test_the_plan_task_mirrors_without_touching_the_price_book(sim: SimulatorInfo) -> None:
    Plan.objects.create(id=1, name="old", tokens_per_hour=8, tokens_per_month=5500)
    assert pricing_tasks.mirror_plans.apply().get() == 7
    assert pricing_tasks.mirror_plans.apply().get() == 7
    plan = Plan.objects.get(pk=1)
    # SolusIO's name and prices are mirrored; the price book keeps its own.
    assert (plan.name, plan.tokens_per_hour, plan.tokens_per_month) == ("1 Core, 1 GB RAM", 8, 5500)
    assert (plan.solusio_tokens_per_hour, plan.solusio_tokens_per_month) == (7, 5000)
    assert plan.agrees_with_solusio is False
    # A plan new to the bridge starts at SolusIO's prices.
    fixed = Plan.objects.get(pk=6)
    assert (fixed.tokens_per_hour, fixed.tokens_per_month) == (0, 3000)
    assert Plan.objects.count() == 7


@pytest.mark.parametrize(
    ("task", "path"),
    [(tasks.mirror_limit_groups, "/limit_groups"), (pricing_tasks.mirror_plans, "/plans")],
)
def test_transient_failures_are_retried_until_solusio_answers(
    sim: SimulatorInfo, task: Any, path: str
) -> None:
    # Two 503s in a row: the first two runs fail, the third (a retry) mirrors.
    sim.control.fail_next("error", 2, method="GET", path=path, status=503)
    result = task.apply()
    assert result.successful(), result.traceback
    assert result.get() > 0
    assert len(sim.control.calls(method="GET", path=path)) == 3
    assert task.max_retries == 5
    assert task.retry_backoff
    assert task.retry_jitter
    assert ServerError in task.autoretry_for


def test_a_refusal_is_not_retried(sim: SimulatorInfo) -> None:
    sim.control.fail_next("error", 1, method="GET", path="/plans", status=422)
    result = pricing_tasks.mirror_plans.apply()
    assert result.failed()
    assert isinstance(result.result, ValidationFailed)
    assert len(sim.control.calls(method="GET", path="/plans")) == 1
    assert not Plan.objects.exists()


def test_without_solusio_the_tasks_skip(settings: Any) -> None:
    settings.SOLUSIO_API_URL = ""
    assert tasks.mirror_limit_groups.apply().get() == -1
    assert pricing_tasks.mirror_plans.apply().get() == -1
    assert not LimitGroup.objects.exists()
