"""`manage.py solusio_reconcile [--fix]`: compare SolusIO's users with the customers.

The report is stored too (Admin → SolusIO reconciliations), like beat's and staff's."""

from typing import Any

from django.core.management.base import CommandError, CommandParser

from solusio.commands import SolusIOCommand
from users.reconcile import run_recorded


class Command(SolusIOCommand):
    help = "Report SolusIO users without a customer, missing customers and drift; --fix syncs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="queue drifted customers for sync")

    def handle(self, *args: Any, fix: bool = False, **options: Any) -> None:
        done = run_recorded(fix=fix, trigger="command")
        assert done is not None  # a new run is always ours
        _, report = done
        for line in report.lines():
            self.stdout.write(line)
        if not report.clean and not fix:
            raise CommandError("SolusIO and the billing database disagree (see above)")
