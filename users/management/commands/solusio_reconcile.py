"""`manage.py solusio_reconcile [--fix]`: compare SolusIO's users with the customers."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from users.reconcile import reconcile


class Command(BaseCommand):
    help = "Report SolusIO users without a customer, missing customers and drift; --fix syncs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="queue drifted customers for sync")

    def handle(self, *args: Any, fix: bool = False, **options: Any) -> None:
        report = reconcile(fix=fix)
        for line in report.lines():
            self.stdout.write(line)
        if not report.clean and not fix:
            raise CommandError("SolusIO and the billing database disagree (see above)")
