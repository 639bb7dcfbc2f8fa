from collections.abc import Iterator

import pytest

from solusio.client import SolusIOClient
from solusio.testing import SimulatorInfo, fast_client
from solusio.testing import solusio_settings as solusio_settings  # re-exported fixture
from solusio.testing import solusio_sim as solusio_sim  # re-exported fixture


@pytest.fixture
def sim(solusio_sim: SimulatorInfo) -> SimulatorInfo:
    return solusio_sim


@pytest.fixture
def client(sim: SimulatorInfo) -> Iterator[SolusIOClient]:
    with fast_client(sim) as c:
        yield c
