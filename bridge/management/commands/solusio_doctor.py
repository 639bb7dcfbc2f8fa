"""`manage.py solusio_doctor [--fix]`: is SolusIO set up for this bridge? One line per step."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bridge import doctor


class Command(BaseCommand):
    help = "Check SolusIO's setup for the bridge (seed Steps 3, 4, 5, 7); --fix applies fixes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fix",
            action="store_true",
            help="apply what the API can (settings patch, plan prices, default limit "
            "group), then check again",
        )

    def handle(self, *args: Any, fix: bool = False, **options: Any) -> None:
        findings = doctor.run(fix=fix)
        for finding in findings:
            style = self.style.SUCCESS if finding.ok else self.style.ERROR
            self.stdout.write(style(finding.line()))
        failed = [f for f in findings if not f.ok]
        if failed:
            raise CommandError(f"{len(failed)} of {len(findings)} checks failed")
