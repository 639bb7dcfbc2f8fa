"""`manage.py run_solusio_simulator`: the SolusIO simulator, token from settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from solusio.simulator import DEFAULT_TOKEN
from solusio.simulator.cli import add_arguments, run


class Command(BaseCommand):
    help = "Serve a simulated SolusIO API (/api/v1) with seeded data and fault injection."

    def add_arguments(self, parser: CommandParser) -> None:
        # The bridge's own token by default, so `runserver` and the simulator agree.
        add_arguments(parser, default_token=settings.SOLUSIO_API_TOKEN or DEFAULT_TOKEN)

    def handle(self, *args: Any, **options: Any) -> None:
        run(options, out=self.stdout)
