"""manage.py import_billing_data FILE.json [--dry-run]; the format is in the README."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pricing import imports


class Command(BaseCommand):
    help = (
        "Import currencies, discounts, tax rules, plans and customers from another billing "
        "system's JSON export. Creates or updates by id (code for currencies) in one "
        "transaction; the first bad row aborts the whole file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The JSON file (format: see the README).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate everything, then roll back."
        )

    def handle(self, *args: Any, file: Path, dry_run: bool, **options: Any) -> None:
        try:
            result = imports.import_billing_data(data=imports.read_file(path=file), dry_run=dry_run)
        except imports.ImportFailed as exc:
            raise CommandError(f"Nothing was imported. {exc}") from exc
        for line in result.summary_lines():
            self.stdout.write(line)
