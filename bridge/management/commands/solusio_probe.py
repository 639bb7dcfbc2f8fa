"""`manage.py solusio_probe [--period YYYY-MM] [--save DIR] [--sso USER_EMAIL]`: what this
SolusIO answers, endpoint by endpoint, against what the bridge expects (solusio.probe)."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from bridge import doctor
from solusio import probe
from solusio.connect import is_configured
from usage.rules import parse_period, period_containing


class Command(BaseCommand):
    help = (
        "Call every SolusIO endpoint the bridge uses and show, field by field, how the "
        "answers differ from what the bridge expects (run -v 2 for every matched field)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", help="the month whose usage page 1 is read (default: now)")
        parser.add_argument(
            "--save", metavar="DIR", help="write the raw answers, secrets and e-mails redacted"
        )
        parser.add_argument(
            "--sso",
            metavar="USER_EMAIL",
            help="also create one single sign-on token for this (test) user",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not is_configured():
            raise CommandError("SOLUSIO_API_URL and SOLUSIO_API_TOKEN must both be set")
        try:
            period = (
                parse_period(options["period"], settings.BILLING_TIMEZONE)
                if options["period"]
                else period_containing(timezone.now(), settings.BILLING_TIMEZONE)
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        reports = doctor.run_probe(
            period.start.isoformat(), period.end.isoformat(), sso_email=options["sso"]
        )
        text = probe.render(reports, every_field=options["verbosity"] >= 2)
        for line in text:
            style = self.style.ERROR if line.startswith("[FAIL]") else None
            self.stdout.write(style(line) if style else line)
        if options["save"]:
            written = probe.save(reports, Path(options["save"]), text)
            self.stdout.write(f"saved {len(written)} files in {options['save']} (redacted)")
        failed = [r for r in reports if not r.ok or r.needed_missing]
        if failed:
            names = ", ".join(r.endpoint.name for r in failed)
            raise CommandError(f"{len(failed)} of {len(reports)} endpoints differ: {names}")
