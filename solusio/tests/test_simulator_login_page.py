"""The simulator's browser login route: where "Open control panel" lands (users.sso)."""

import requests

from solusio.client import SolusIOClient
from solusio.simulator.browser import LOGIN_PATH
from solusio.testing import SimulatorInfo


def test_a_one_time_token_opens_the_users_page_once(
    sim: SimulatorInfo, client: SolusIOClient
) -> None:
    token = client.create_login_token(1)
    url = sim.control.root + LOGIN_PATH
    first = requests.get(url, params={"token": token}, timeout=5)
    assert first.status_code == 200
    assert first.headers["Content-Type"].startswith("text/html")
    assert "Signed in as customer1@example.test (user #1)" in first.text
    again = requests.get(url, params={"token": token}, timeout=5)
    assert again.status_code == 401
    assert "not valid" in again.text


def test_an_unknown_or_missing_token_is_refused(sim: SimulatorInfo) -> None:
    url = sim.control.root + LOGIN_PATH
    assert requests.get(url, params={"token": "guessed"}, timeout=5).status_code == 401
    assert requests.get(url, timeout=5).status_code == 401
