"""`manage.py import_bank_statement FILE [--format camt053|csv]`: import a bank statement,
match its credit entries to invoices, print what it did."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.bank import services
from payments.models import StatementFormat


class Command(BaseCommand):
    help = (
        "Import a bank statement (ISO 20022 camt.053 XML or CSV): new credit entries become "
        "payments where they match an invoice; the rest wait for staff in the admin. "
        "Importing the same file again changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--format",
            choices=StatementFormat.values,
            help="default: camt053 if the file is XML, else csv",
        )
        parser.add_argument(
            "--account", default="", help="the account (IBAN) of a CSV file, which names none"
        )

    def handle(self, *args: Any, file: Path, format: str | None, account: str, **o: Any) -> None:
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        try:
            summary = services.import_statement(
                content, filename=file.name, format=format, account=account
            )
        except services.StatementError as exc:
            raise CommandError(f"{file.name}: {exc}") from exc
        self.stdout.write(str(summary))
