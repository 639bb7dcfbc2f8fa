"""Lists are read page by page, lazily, across many pages."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from solusio.client import SolusIOClient, _next_page
from solusio.errors import InvalidResponse
from solusio.testing import SimulatorInfo, fast_client, running_simulator


@pytest.fixture(scope="module")
def crowd() -> Iterator[SimulatorInfo]:
    with running_simulator(users=1050, servers=3000) as info:
        yield info


def test_all_1050_users_arrive_over_11_pages_of_100(crowd: SimulatorInfo) -> None:
    crowd.control.clear_calls()
    with fast_client(crowd, per_page=100) as client:
        ids = [u.id for u in client.iter_users()]
    assert ids == list(range(1, 1051))
    calls = crowd.control.calls(path="/users")
    assert [c["query"]["page"] for c in calls] == [str(n) for n in range(1, 12)]
    assert {c["query"]["per_page"] for c in calls} == {"100"}


def test_pages_are_fetched_only_as_they_are_consumed(crowd: SimulatorInfo) -> None:
    crowd.control.clear_calls()
    with fast_client(crowd, per_page=100) as client:
        users = client.iter_users()
        assert crowd.control.calls() == []  # a generator: nothing fetched yet
        next(users)
        assert len(crowd.control.calls()) == 1
        for _ in range(150):
            next(users)
        assert len(crowd.control.calls()) == 2  # 151 users read: two pages, not eleven


def test_a_larger_page_size_than_the_server_allows_still_reads_everything(
    crowd: SimulatorInfo,
) -> None:
    crowd.control.clear_calls()
    with fast_client(crowd, per_page=500) as client:
        assert sum(1 for _ in client.iter_users()) == 1050
    # The simulator caps pages at 100, like the assumed SolusIO limit; meta says so.
    assert len(crowd.control.calls()) == 11


def test_usage_pages_are_consistent_whatever_the_page_size(crowd: SimulatorInfo) -> None:
    start, end = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)
    with fast_client(crowd, per_page=100) as big, fast_client(crowd, per_page=7) as small:
        by_100 = list(big.iter_usage(start, end))
        by_7 = list(small.iter_usage(start, end))
    assert by_100 == by_7
    keys = {(r.server.id, r.item, r.started_at) for r in by_100}
    assert len(keys) == len(by_100)  # no row twice, none lost between pages
    assert len(by_100) > 3000  # every slot has at least one server or more in a month


def test_search_results_are_paginated_too(crowd: SimulatorInfo) -> None:
    with fast_client(crowd, per_page=10) as client:
        # customer1@, customer10@..customer19@, customer100@.. customer199@, customer1000@..
        hits = list(client.iter_users(search="customer1"))
        assert len(hits) == 1 + 10 + 100 + 51
        found = client.find_user_by_email("customer1049@example.test")
    assert found is not None
    assert found.id == 1049


def test_next_page_falls_back_to_links_when_meta_is_absent() -> None:
    page = {"data": [], "links": {"next": "https://elsewhere.example/api/v1/users?page=3"}}
    # Only the page number is taken from the link: never its host.
    assert _next_page(page, 2, "/users") == 3
    assert _next_page({"data": [], "links": {"next": None}}, 2, "/users") is None
    assert _next_page({"data": []}, 2, "/users") is None


def test_a_next_link_that_does_not_advance_is_refused() -> None:
    page = {"data": [], "links": {"next": "/api/v1/users?page=2"}}
    with pytest.raises(InvalidResponse, match=r"links\.next"):
        _next_page(page, 2, "/users")


def test_a_list_without_data_array_is_invalid(client: SolusIOClient, sim: SimulatorInfo) -> None:
    with pytest.raises(InvalidResponse, match="data"):
        list(client._paginate("/settings"))
