"""bin/manage: manage.py with the embedded daemon's environment (bin/embedded-env)."""

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[1]
PRINT = (
    "from django.conf import settings as s; "
    "print(s.SOLUSIO_API_URL, s.SOLUSIO_API_TOKEN, s.PRICING_API_TOKEN)"
)


def manage(*args: str, **env: str) -> str:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SOLUSIO_API_URL", "SOLUSIO_API_TOKEN", "PRICING_API_TOKEN", "SIMULATOR_PORT")
    }
    done = subprocess.run(
        [str(ROOT / "bin" / "manage"), *args],
        env={**base, "DJANGO_SETTINGS_MODULE": "bridge.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]  # after the shell's own notice


def test_without_a_solusio_it_points_at_the_demo_simulator() -> None:
    assert manage("shell", "-c", PRINT) == (
        "http://127.0.0.1:8090/api/v1 simulator-token demo-pricing-token"
    )
    assert manage("shell", "-c", PRINT, SIMULATOR_PORT="9999").startswith(
        "http://127.0.0.1:9999/api/v1 "
    )


def test_a_configured_solusio_and_token_are_kept() -> None:
    out = manage(
        "shell",
        "-c",
        PRINT,
        SOLUSIO_API_URL="https://solusio.example/api/v1",
        SOLUSIO_API_TOKEN="t0ken",
        PRICING_API_TOKEN="p",
    )
    assert out == "https://solusio.example/api/v1 t0ken p"


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("close_cycle", ["--period", "2026-10"]),
        ("solusio_plans", []),
        ("solusio_limit_groups", []),
        ("solusio_reconcile", []),
    ],
)
@pytest.mark.django_db
def test_commands_say_in_one_line_that_solusio_is_not_configured(
    settings: Any, command: str, args: list[str]
) -> None:
    settings.SOLUSIO_API_URL = ""
    with pytest.raises(CommandError, match=r"SOLUSIO_API_URL and SOLUSIO_API_TOKEN .*bin/manage"):
        call_command(command, *args)
