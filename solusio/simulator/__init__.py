"""A SolusIO simulator: `python -m solusio.simulator --port N` or `start_in_thread()`."""

from solusio.simulator.faults import Fault, FaultConfig
from solusio.simulator.server import (
    DEFAULT_TOKEN,
    RunningSimulator,
    Simulator,
    serve,
    start_in_thread,
)
from solusio.simulator.state import SeedConfig

__all__ = [
    "DEFAULT_TOKEN",
    "Fault",
    "FaultConfig",
    "RunningSimulator",
    "SeedConfig",
    "Simulator",
    "serve",
    "start_in_thread",
]
