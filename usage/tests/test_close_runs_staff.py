"""Close runs for staff: the admin (read-only, a progress bar, each shard's worker and
error) and the staff API, each tried with no permission, view-only and more."""

from datetime import UTC, datetime

import pytest
from django.test import Client

from pricing.tests.api_helpers import body, make_user, token_client
from usage.models import CloseRun, CloseRunState, CloseShard, CloseShardState

pytestmark = pytest.mark.django_db
LIST = "/admin/usage/closerun/"


@pytest.fixture
def run() -> CloseRun:
    """October half built on two workers, one shard failing on its second attempt."""
    at = datetime(2026, 11, 1, 0, 7, tzinfo=UTC)
    run = CloseRun.objects.create(
        period=datetime(2026, 10, 1).date(),
        state=CloseRunState.BUILDING,
        source="usage_api",
        started_at=at,
        rows=5000,
        customers=4000,
        shards_total=2,
        seconds={"pull": 3.5},
    )
    CloseShard.objects.create(
        run=run, index=0, first_customer=1, last_customer=2000, customers=2000,
        state=CloseShardState.DONE, worker="worker-1:17", built=2000, created=2000,
    )  # fmt: skip
    CloseShard.objects.create(
        run=run, index=1, first_customer=2001, last_customer=4000, customers=2000,
        state=CloseShardState.RUNNING, attempts=2, worker="worker-2:9", built=1000,
        error="OperationalError: server closed the connection unexpectedly",
    )  # fmt: skip
    return run


def signed_in(*perms: str) -> Client:
    user = make_user(f"staff-{'-'.join(perms) or 'none'}", models=[], actions=[])
    from django.contrib.auth.models import Permission

    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="usage", codename__in=perms)
    )
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_shows_progress_shards_workers_and_errors(run: CloseRun) -> None:
    viewer = signed_in("view_closerun")
    page = viewer.get(LIST)
    assert page.status_code == 200
    html = page.content.decode()
    # Pulled (40) + three quarters of the customers built (55 × 3/4, rounded down).
    assert '<progress max="100" value="81"></progress> 81 %' in html
    assert "1 / 2" in html  # shards done
    assert "3,000 / 4,000" in html  # customers built
    detail = viewer.get(f"{LIST}{run.pk}/change/").content.decode()
    assert "worker-2:9" in detail
    assert "server closed the connection unexpectedly" in detail


def test_the_admin_is_read_only_and_needs_the_view_permission(run: CloseRun) -> None:
    assert signed_in().get(LIST).status_code == 403
    assert signed_in("view_invoice").get(LIST).status_code == 403
    viewer = signed_in("view_closerun")
    assert viewer.get(f"{LIST}add/").status_code == 403
    change = viewer.get(f"{LIST}{run.pk}/change/")
    assert change.status_code == 200
    assert b'name="_save"' not in change.content
    assert viewer.post(f"{LIST}{run.pk}/delete/").status_code == 403
    # Not even a superuser edits or deletes a run: the close writes it.
    root = Client()
    from django.contrib.auth.models import User

    root.force_login(User.objects.create_superuser("root", password="x"))
    assert root.get(f"{LIST}add/").status_code == 403
    assert root.post(f"{LIST}{run.pk}/delete/").status_code == 403


def test_the_staff_api_lists_runs_and_shows_their_shards(run: CloseRun) -> None:
    url = "/api/v1/close-runs/"
    nobody = token_client(make_user("nobody"))
    assert nobody.get(url).status_code == 403
    other = token_client(make_user("invoices-only", models=[], actions=[]))
    assert other.get(url).status_code == 403
    from usage.models import CloseRun as Model

    viewer = token_client(make_user("run-viewer", models=[Model], actions=["view"]))
    listed = body(viewer.get(url))
    [item] = listed.get("results", listed)
    assert (item["period"], item["state"], item["progress"]) == ("2026-10", "building", 81)
    assert (item["shards_done"], item["shards_total"], item["built"]) == (1, 2, 3000)
    assert "shards" not in item
    detail = body(viewer.get(f"{url}{run.pk}/"))
    assert [s["worker"] for s in detail["shards"]] == ["worker-1:17", "worker-2:9"]
    assert detail["shards"][1]["error"].startswith("OperationalError")
    # Read-only, whatever the permissions.
    writer = token_client(make_user("run-writer", models=[Model]))
    assert writer.post(url, {}).status_code == 405
    assert writer.delete(f"{url}{run.pk}/").status_code == 405
    root = token_client(make_user("api-root-reader", models=[Model], actions=["view"]))
    assert "close-runs" in body(root.get("/api/v1/"))
