"""`manage.py close_cycle --period 2026-10 [--dry-run] [--customer ID] [--submit]`: the cycle
close by hand, in this process or (--submit) on the Celery workers, with progress bars on
stderr and a summary on stdout. Safe to repeat (see usage.workflow)."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from tqdm import tqdm

from bridge.jsonnum import plain_decimal
from bridge.money import round_money
from pricing.models import Currency
from solusio.commands import SolusIOCommand
from solusio.errors import SolusIOError
from usage import close, cycle, workflow
from usage.models import CloseRun, CloseRunState
from usage.rules import Period, parse_period


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
        parser.add_argument(
            "--submit",
            action="store_true",
            help="Run the close on the Celery workers (the close queue) and follow it; "
            "by default it runs in this process.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            period = parse_period(options["period"], settings.BILLING_TIMEZONE)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        issue = {"auto": None, "yes": True, "no": False}[options["issue"]]
        progress = _Progress(self.stderr.isatty() if hasattr(self.stderr, "isatty") else False)
        try:
            if options["submit"]:
                summary = self._submit(period, options, issue, progress)
            else:
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

    def _submit(
        self, period: Period, options: dict[str, Any], issue: bool | None, progress: _Progress
    ) -> cycle.CloseSummary:
        """Submit the close to the workers (the close queue) and follow it to its end."""
        if options["dry_run"]:
            raise cycle.CloseError("a dry run stores nothing: it runs here, without --submit")
        close.check_closable(period, dry_run=False, pull=not options["stored"], now=None)
        run = workflow.submit(
            period=period,
            customer_id=options["customer"],
            pull=not options["stored"],
            auto_issue=issue,
        )
        self.stderr.write(
            f"close run #{run.pk} submitted to the {settings.CLOSE_QUEUE!r} queue; "
            "Ctrl-C stops following it, not the close"
        )
        try:
            run = workflow.follow(run.pk, on_change=progress.follow)
        except KeyboardInterrupt:
            progress.done()
            raise CommandError(
                f"stopped following close run #{run.pk}; it goes on (admin: Close runs)"
            ) from None
        if run.state == CloseRunState.FAILED:
            raise cycle.CloseError(f"run #{run.pk}: {run.error}")
        return workflow.summary_of(run)

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
            if summary.source:
                out(f"  usage from: {summary.source}")
            if summary.fallback_reason:
                out(f"  {summary.fallback_reason}")
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
    """Progress bars on stderr (tqdm) when it is a terminal; nothing otherwise (a log or
    a cron mail gets the summary only)."""

    LABELS = {"pull": "usage rows pulled", "build": "customers built"}

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.bar: tqdm[Any] | None = None
        self.stage = ""

    def _bar(self, stage: str, total: int | None = None) -> tqdm[Any]:
        if self.bar is None or self.stage != stage:
            self.done()
            self.stage = stage
            self.bar = tqdm(
                total=total,
                desc=self.LABELS.get(stage, stage),
                file=sys.stderr,
                dynamic_ncols=True,
            )
        elif total is not None and self.bar.total != total:
            self.bar.total = total
        return self.bar

    def __call__(self, stage: str, count: int) -> None:
        if not self.tty:
            return
        if stage == "customers":  # the build's total, once the pull is done
            self._bar("build", count)
            return
        bar = self._bar(stage)
        bar.update(count - bar.n)

    def follow(self, run: CloseRun) -> None:
        """A submitted run, as `workflow.follow` reads it from the database."""
        if not self.tty:
            return
        if run.state == CloseRunState.PULLING:
            self("pull", run.rows)
        elif run.state == CloseRunState.BUILDING:
            self("customers", run.customers)
            self("build", workflow.built_so_far(run))
        elif run.state == CloseRunState.ISSUING:
            self("customers", run.customers)
            self("build", run.customers)
            self.done()
            sys.stderr.write("issuing…\n")

    def done(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
