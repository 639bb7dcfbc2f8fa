"""Test helpers shared by the apps' suites."""

import sys


def celery_worker_command(queue: str) -> list[str]:
    """A real Celery worker (not eager mode) on its own queue, so concurrent test runs and
    other workers on the same broker never take each other's tasks."""
    return [
        sys.executable, "-m", "celery", "-A", "bridge", "worker", "--pool", "solo",
        "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-l", "warning",
    ]  # fmt: skip
