"""`manage.py close_cycle --period 2026-10 [--dry-run] [--customer ID]`: the cycle close by
hand, with progress on stderr and a summary on stdout. Safe to repeat (see usage.close)."""

import sys
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from bridge.jsonnum import plain_decimal
from bridge.money import round_money
from pricing.models import Currency
from solusio.commands import SolusIOCommand
from solusio.errors import SolusIOError
from usage import close, cycle
from usage.rules import parse_period


class Command(SolusIOCommand):
    help = "Close a billing period: pull SolusIO usage, build invoices, issue if auto-issue."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", required=True, help="The month, e.g. 2026-10.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Pull and compute; store nothing."
        )
        parser.add_argument("--customer", type=int, help="Build only this customer's invoice.")
        parser.add_argument(
            "--stored",
            action="store_true",
            help="Build from the usage the last complete pull stored; do not ask SolusIO.",
        )
        parser.add_argument(
            "--issue",
            choices=["auto", "yes", "no"],
            default="auto",
            help="Issue the drafts: auto follows the billing settings (default).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            period = parse_period(options["period"], settings.BILLING_TIMEZONE)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        issue = {"auto": None, "yes": True, "no": False}[options["issue"]]
        progress = _Progress(self.stderr.isatty() if hasattr(self.stderr, "isatty") else False)
        try:
            summary = close.close_cycle(
                period=period,
                customer_id=options["customer"],
                dry_run=options["dry_run"],
                auto_issue=issue,
                progress=progress,
                pull=not options["stored"],
            )
        except (cycle.CloseError, SolusIOError) as exc:
            progress.done()
            raise CommandError(f"close of {period.label} failed: {exc}") from exc
        progress.done()
        self._print(
            summary, period.start.isoformat(), period.end.isoformat(), stored=options["stored"]
        )

    def _print(
        self, summary: cycle.CloseSummary, start: str, end: str, stored: bool = False
    ) -> None:
        f = summary.figures
        out = self.stdout.write
        head = "DRY RUN — nothing stored" if summary.dry_run else "closed"
        out(f"{summary.period} [{start}, {end}) {head}")
        rows = "usage rows stored (not pulled again)" if stored else "usage rows pulled"
        out(f"  {rows}: {summary.rows:,}  orphans: {f.get('orphans', 0):,}")
        out(f"  customers invoiced: {f.get('customers', 0):,}  lines: {f.get('lines', 0):,}")
        if not summary.dry_run:
            out(
                f"  invoices: {summary.created:,} created, {summary.updated:,} updated, "
                f"{summary.unchanged:,} unchanged, {summary.frozen:,} already issued, "
                f"{summary.removed:,} removed"
            )
            out(f"  issued now: {summary.issued:,}  held for review: {summary.held:,}")
            out("  took: " + ", ".join(f"{k} {v:.1f} s" for k, v in summary.seconds.items()))
            states = ", ".join(f"{k} {v:,}" for k, v in sorted(f.get("by_status", {}).items()))
            out(f"  by status: {states or '-'}")
        out(f"  discrepancies with SolusIO's tokens: {f.get('discrepancies', 0):,}")
        if f.get("unknown_kinds"):
            out(
                f"  usage rows of a kind the bridge cannot price: {f['unknown_kinds']:,} "
                "(not billed; their customers' drafts are held)"
            )
        decimals = dict(Currency.objects.values_list("code", "decimals"))
        for code, figures in f.get("per_currency", {}).items():
            places = decimals.get(code)

            def money(value: Decimal, places: int | None = places) -> str:
                # As the currency shows it (24.60 USD, not 24.6): amounts are rounded to
                # its decimals already, so this adds zeros and never rounds; exact if unknown.
                return plain_decimal(value) if places is None else str(round_money(value, places))

            out(
                f"  {code}: {figures['invoices']:,} invoices, {figures['tokens']:,} tokens, "
                f"subtotal {money(figures['subtotal'])}, "
                f"taxes {money(figures['taxes'])}, "
                f"total {money(figures['total'])}"
            )


class _Progress:
    """A one-line progress display on stderr (a plain log line when not a terminal)."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.shown = False

    def __call__(self, stage: str, count: int) -> None:
        label = {"pull": "usage rows pulled", "build": "customers built"}.get(stage, stage)
        if self.tty:
            sys.stderr.write(f"\r{label}: {count:,}\033[K")
            sys.stderr.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False
