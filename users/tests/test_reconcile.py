"""Reconciliation finds each kind of drift, fixes ours, and never deletes a SolusIO user."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from solusio.testing import SimulatorInfo
from users import services
from users.models import LimitGroup, SolusioAccount
from users.reconcile import reconcile
from users.tests.conftest import deliver_all, solusio_user

pytestmark = pytest.mark.django_db


def test_reconciliation_reports_each_kind_of_drift_and_fixes_ours(
    sim: SimulatorInfo, make_customer
) -> None:
    services.mirror_limit_groups()
    in_step = make_customer()
    status_drift = make_customer()
    group_drift = make_customer(limit_group=LimitGroup.objects.get(pk=1))
    missing = make_customer()
    deliver_all()
    state = sim.control.simulator.state  # type: ignore[union-attr]

    def user_id(customer) -> int:  # type: ignore[no-untyped-def]
        return SolusioAccount.objects.get(pk=customer.pk).solusio_user_id  # type: ignore[return-value]

    state.update_user(user_id(status_drift), {"status": "suspended"})
    state.update_user(user_id(group_drift), {"limit_group_id": 2})
    state.delete_user(user_id(missing))
    # Self-registered (no billing id) and a user linked to a billing id we do not have.
    self_registered = state.create_user({"email": "walkin@example.com", "password": "pw-123456"})
    stranger = state.create_user(
        {"email": "old@example.com", "password": "pw-123456", "billing_user_id": 777_777}
    )
    pending = make_customer()  # its create is still on its way: not reported

    report = reconcile(fix=False)

    assert report.solusio_users == 5  # 4 made, 1 deleted, 2 strangers
    assert report.customers == 5
    assert report.in_flight == 1
    assert sorted(u.id for u in report.unknown_users) == [self_registered["id"], stranger["id"]]
    assert report.missing == [missing.pk]
    assert {(d.customer_id, d.field, d.ours, d.theirs) for d in report.drift} == {
        (status_drift.pk, "status", "active", "suspended"),
        (group_drift.pk, "limit_group", 1, 2),
    }
    assert report.fixed == []
    assert in_step.pk not in report.missing

    report = reconcile(fix=True)
    assert sorted(report.fixed) == sorted([status_drift.pk, group_drift.pk, missing.pk])
    deliver_all()
    assert solusio_user(sim, status_drift.pk)["status"] == "active"  # type: ignore[index]
    assert solusio_user(sim, group_drift.pk)["limit_group_id"] == 1  # type: ignore[index]
    assert solusio_user(sim, missing.pk) is not None
    assert solusio_user(sim, pending.pk) is not None

    after = reconcile(fix=True)
    assert (after.missing, after.drift, after.fixed) == ([], [], [])
    # The users we did not create are reported, never deleted.
    assert self_registered["id"] in state.users
    assert stranger["id"] in state.users
    assert not sim.control.calls(method="DELETE")


def test_the_command_fails_when_solusio_and_billing_disagree(
    sim: SimulatorInfo, make_customer
) -> None:
    make_customer()
    deliver_all()
    out = StringIO()
    call_command("solusio_reconcile", stdout=out)
    assert "1 SolusIO users, 1 customers" in out.getvalue()
    state = sim.control.simulator.state  # type: ignore[union-attr]
    state.create_user({"email": "walkin@example.com", "password": "pw-123456"})
    with pytest.raises(CommandError):
        call_command("solusio_reconcile", stdout=StringIO())
