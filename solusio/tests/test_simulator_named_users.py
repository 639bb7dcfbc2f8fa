"""Named seeded users: the first seeded users can be given e-mails and billing ids (the
demo seeds its customers this way), and they own the seeded servers and usage."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from solusio.simulator.cli import customers_from
from solusio.simulator.state import SeedConfig, SimState
from solusio.testing import SimulatorInfo, fast_client


def test_named_users_come_first_with_their_e_mails_and_billing_ids() -> None:
    state = SimState(SeedConfig(users=3, named_users=((17, "Ann@Example.test"), (4, "b@x.test"))))
    assert [(u["id"], u["billing_user_id"], u["email"]) for u in state.users.values()] == [
        (1, 17, "Ann@Example.test"),
        (2, 4, "b@x.test"),
        (3, 1, "customer1@example.test"),  # the first billing id the named users left free
    ]
    # Found by e-mail regardless of case, as SolusIO's search is.
    users, total = state.list_users("ann@example.test", 0, 10)
    assert total == 1
    assert users[0]["id"] == 1


def test_named_users_count_as_seeded_users() -> None:
    config = SeedConfig(users=0, servers=9, named_users=((1, "a@x.test"), (2, "b@x.test")))
    assert config.users == 2
    state = SimState(config)
    assert (state.timeline.users, state.timeline.slots) == (2, 9)


@pytest.mark.parametrize(
    "named",
    [
        ((1, "a@x.test"), (1, "b@x.test")),
        ((1, "a@x.test"), (2, "A@x.test")),
        ((0, "a@x.test"),),
        ((1, "not an address"),),
    ],
)
def test_bad_named_users_are_refused(named: tuple[tuple[int, str], ...]) -> None:
    with pytest.raises(ValueError, match="named users"):
        SeedConfig(named_users=named)


def test_the_usage_of_named_users_carries_their_billing_ids(sim: SimulatorInfo) -> None:
    sim.control.seed(users=0, servers=4, named_users=[[41, "x@example.test"], [42, "y@e.test"]])
    with fast_client(sim) as client:
        assert {u.billing_user_id for u in client.iter_users()} == {41, 42}
        rows = list(
            client.iter_usage(datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
        )
    assert rows
    assert {r.user.billing_user_id for r in rows} == {41, 42}


def test_customers_come_from_a_billing_data_file(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo-billing-data.json"
    assert customers_from(str(demo)) == ((1, "jane@example.co.uk"), (2, "john@example.com"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"customers": [{"id": 1}]}))
    with pytest.raises(SystemExit, match="--seed-customers"):
        customers_from(str(bad))
    with pytest.raises(SystemExit, match="--seed-customers"):
        customers_from(str(tmp_path / "missing.json"))


def test_generated_users_never_reuse_a_named_users_billing_id() -> None:
    config = SeedConfig(users=6, named_users=((5, "five@example.com"), (2, "two@example.com")))
    seeded = [config.seeded_user(uid) for uid in range(1, 7)]
    assert seeded == [
        (5, "five@example.com"),
        (2, "two@example.com"),
        (1, "customer1@example.test"),
        (3, "customer3@example.test"),
        (4, "customer4@example.test"),
        (6, "customer6@example.test"),
    ]
    # Named ids 1..n (the demo): every user keeps billing id = its number.
    demo = SeedConfig(users=4, named_users=((1, "a@example.com"), (2, "b@example.com")))
    assert [demo.seeded_user(uid)[0] for uid in range(1, 5)] == [1, 2, 3, 4]
