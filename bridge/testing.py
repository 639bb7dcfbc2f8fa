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


def run_command(name: str, *args: str) -> tuple[bool, str]:
    """`manage.py NAME ARGS`: (succeeded, its output, then the CommandError's text if any)."""
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    try:
        call_command(name, *args, stdout=out)
    except CommandError as exc:
        return False, f"{out.getvalue()}\nCommandError: {exc}"
    return True, out.getvalue()
