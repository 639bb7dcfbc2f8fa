"""Reads for invoicing: customers' pricing snapshots, stored usage as rule inputs, the
previews (month to date, dry run), overdue invoices."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from bridge.money import CurrencyDisplay
from pricing.models import Currency, Discount, PricingSettings, TaxRule
from pricing.selectors import discounts_in_force, tax_rules_for
from solusio.client import SolusIOClient
from solusio.connect import given_or_own
from solusio.usage_schema import UsageRow
from usage import db, observe
from usage.cycle import CloseSummary, Progress, no_progress
from usage.models import Invoice, InvoiceStatus, UsageItemKind, UsagePull, UsageRecord
from usage.rules import (
    InvoiceDraft,
    Period,
    PricingSnapshot,
    UsageInput,
    build_invoice,
    period_containing,
)
from users.models import Customer

PREVIEW_PROGRESS_EVERY = 2000  # rows between progress reports of a dry run

USAGE_FIELDS = (
    "customer_id",
    "server_id",
    "server_uuid",
    "server_name",
    "plan_id",
    "plan_name",
    "item",
    "started_at",
    "ended_at",
    "hours",
    "tokens_per_hour",
    "tokens_per_month",
    "reported_tokens",
    "backup_price",
)


class PricingContext:
    """Builds customers' snapshots with the shared parts read once per close, not once per
    customer: the compound setting, and tax rules per distinct (country, region)."""

    def __init__(self, at: datetime) -> None:
        # Discounts are those in force at this instant (the last one of the period).
        self.at = at
        self.compound = PricingSettings.load().taxes_compound
        self._taxes: dict[tuple[str, str], list[TaxRule]] = {}
        self._currencies: dict[str, Currency] | None = None
        self._discounts: dict[int, Discount] = {}
        # Customers alike in what their snapshot depends on share one snapshot object.
        self._shared: dict[tuple[Any, ...], PricingSnapshot] = {}

    def taxes(self, country: str, region: str) -> list[TaxRule]:
        key = (country.upper(), region.strip().lower())
        found = self._taxes.get(key)
        if found is None:
            found = self._taxes[key] = tax_rules_for(country, region)
        return found

    def snapshot(self, customer: Customer) -> PricingSnapshot:
        """`customer` with currency selected and discounts prefetched."""
        return self._snapshot(
            customer.currency,
            list(customer.discounts.all()),
            customer.country,
            customer.region,
            customer.billing_exempt,
        )

    def snapshots(self, customer_ids: Sequence[int]) -> dict[int, PricingSnapshot]:
        """Snapshots of many customers in three small queries (plain values, no model
        instances: the close builds thousands). Same result as `snapshot` one by one."""
        if self._currencies is None:
            self._currencies = {c.code: c for c in Currency.objects.all()}
            self._discounts = {d.pk: d for d in Discount.objects.all()}
        links: dict[int, list[Discount]] = defaultdict(list)
        through = Customer.discounts.through
        for customer_id, discount_id in through.objects.filter(
            customer_id__any=customer_ids
        ).values_list("customer_id", "discount_id"):
            links[customer_id].append(self._discounts[discount_id])
        out: dict[int, PricingSnapshot] = {}
        rows = Customer.objects.filter(pk__any=customer_ids).values_list(
            "pk", "currency_id", "country", "region", "billing_exempt"
        )
        shared = self._shared
        for pk, currency_code, country, region, exempt in rows:
            discounts = links.get(pk, [])
            key = (
                currency_code,
                tuple(sorted(d.pk for d in discounts)),
                country.upper(),
                region.strip().lower(),
                exempt,
            )
            found = shared.get(key)
            if found is None:
                found = shared[key] = self._snapshot(
                    self._currencies[currency_code], discounts, country, region, exempt
                )
            out[pk] = found
        return out

    def _snapshot(
        self,
        cur: Currency,
        discounts: list[Discount],
        country: str,
        region: str,
        exempt: bool,
    ) -> PricingSnapshot:
        in_force, _ = discounts_in_force(sorted(discounts, key=lambda d: (d.name, d.id)), self.at)
        return PricingSnapshot(
            currency=cur.code,
            token_price=cur.token_price,
            decimals=cur.decimals,
            display_prefix=cur.display_prefix,
            display_suffix=cur.display_suffix,
            thousands_separator=cur.thousands_separator,
            decimals_separator=cur.decimals_separator,
            discounts=tuple((d.name, d.multiplier) for d in in_force),
            taxes=tuple((t.label, t.rate) for t in self.taxes(country, region)),
            compound=self.compound,
            exempt=exempt,
        )


def pricing_instant(period: Period) -> datetime:
    """Discounts and prices are those in force at the period's last instant."""
    return period.end - timedelta(microseconds=1)


def customers_for_pricing(ids: Iterable[int]) -> dict[int, Customer]:
    return (
        Customer.objects.select_related("currency").prefetch_related("discounts").in_bulk(list(ids))
    )


def customer_ids() -> set[int]:
    """Every customer's id (the pull tells known billing users from orphans with it)."""
    return set(Customer.objects.values_list("id", flat=True))


def usage_input(values: Sequence[object]) -> UsageInput:
    """A `values_list(*USAGE_FIELDS)` tuple without its customer id, as the rules read it."""
    return UsageInput._make(values[1:])


def billed_customer_ids(
    period: Period, customer_id: int | None = None, between: tuple[int, int] | None = None
) -> list[int]:
    """Customers with stored usage in the period, in id order (`between`: ids in that
    closed range only, a close's shard)."""
    qs = UsageRecord.objects.filter(period=period.month, customer__isnull=False)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    if between is not None:
        qs = qs.filter(customer_id__gte=between[0], customer_id__lte=between[1])
    return list(qs.order_by("customer_id").values_list("customer_id", flat=True).distinct())


def usage_of(period: Period, customer_ids: Sequence[int]) -> Iterable[Sequence[object]]:
    """The customers' stored rows as USAGE_FIELDS tuples, ordered by customer (on
    PostgreSQL read with psycopg's binary loaders: see `db.usage_rows`)."""
    queryset = (
        UsageRecord.objects.filter(period=period.month, customer_id__in=list(customer_ids))
        .order_by("customer_id", "server_id", "item", "started_at")
        .values_list(*USAGE_FIELDS)
    )
    if not db.is_postgresql():
        return queryset.iterator(chunk_size=5000)
    return db.usage_rows(USAGE_FIELDS, period.month, customer_ids)


def completed_pull(period: Period) -> UsagePull | None:
    """The period's pull, if it completed and covered the whole period."""
    return UsagePull.objects.filter(
        period=period.month, completed_at__isnull=False, upto__gte=period.end
    ).first()


def fallback_reason(period: Period) -> str:
    """Why the period's stored usage came from a fallback source ("" when it did not):
    every draft built from it waits for staff with this reason."""
    found = UsagePull.objects.filter(period=period.month).values_list("fallback_reason", flat=True)
    return next(iter(found), "")


def month_to_date_pull(period: Period) -> UsagePull | None:
    """The period's last completed pull, however far it reached."""
    return UsagePull.objects.filter(period=period.month, completed_at__isnull=False).first()


def period_closed(period: Period) -> bool:
    return UsagePull.objects.filter(period=period.month, closed_at__isnull=False).exists()


# --- Previews: invoices built from SolusIO's answer or the month so far, nothing stored -----


def _usage_input(row: UsageRow, period: Period, end: datetime) -> UsageInput:
    return UsageInput(
        server_id=row.server.id,
        server_uuid=row.server.uuid,
        server_name=row.server.name,
        plan_id=row.plan.id,
        plan_name=row.plan.name,
        item=str(row.item),
        started_at=row.started_at,
        ended_at=row.ended_at,
        hours=row.hours_within(period.start, end),
        tokens_per_hour=row.tph,
        tokens_per_month=row.tpm,
        reported_tokens=row.tokens,
        backup_price=row.backup_price,
    )


def drafts_from_solusio(
    *,
    period: Period,
    client: SolusIOClient,
    upto: datetime | None = None,
    customer_id: int | None = None,
    progress: Progress = no_progress,
    at: datetime | None = None,
) -> tuple[dict[int, InvoiceDraft], int, int]:
    """Invoices straight from SolusIO's answer, nothing stored: (drafts, rows, orphans).
    For the dry run and the month-to-date preview."""
    end = min(period.end, upto) if upto else period.end
    usage: dict[int | None, list[UsageInput]] = defaultdict(list)
    rows = 0
    if end > period.start:
        for row in client.iter_usage(period.start, end):
            rows += 1
            billing_id = row.user.billing_user_id
            if customer_id is not None and billing_id != customer_id:
                continue
            usage[billing_id].append(_usage_input(row, period, end))
            if rows % PREVIEW_PROGRESS_EVERY == 0:
                progress("pull", rows)
    ids = [cid for cid in usage if cid is not None]
    customers = customers_for_pricing(ids)
    # Prices in force at `at` (a preview: now), else at the period's end (a dry run).
    context = PricingContext(at or pricing_instant(period))
    drafts: dict[int, InvoiceDraft] = {}
    orphans = len(usage.pop(None, []))
    for cid, items in usage.items():
        customer = customers.get(cid)  # type: ignore[arg-type]
        if customer is None:
            orphans += len(items)
            continue
        drafts[cid] = build_invoice(items, context.snapshot(customer))  # type: ignore[index]
    return drafts, rows, orphans


def observed_input(row: Sequence[Any]) -> UsageInput:
    """An `observe.observed_rows` row as the rules read it (observations report no charge)."""
    (sid, item, started, ended, _, _, uuid, name, plan_id, plan_name, hours, tph, tpm, bp, _) = row
    return UsageInput(
        sid, uuid, name, plan_id, plan_name, str(item), started, ended, hours, tph, tpm, None, bp
    )


def drafts_from_observed(
    *,
    period: Period,
    upto: datetime | None = None,
    customer_id: int | None = None,
    at: datetime | None = None,
) -> tuple[dict[int, InvoiceDraft], int, int]:
    """`drafts_from_solusio`'s answer from observed usage (USAGE_SOURCE=observed)."""
    usage: dict[int | None, list[UsageInput]] = defaultdict(list)
    rows = 0
    ids = None if customer_id is None else [customer_id]
    for row in observe.observed_rows(period, upto=upto, customer_ids=ids):
        rows += 1
        usage[row[-1]].append(observed_input(row))
    orphans = len(usage.pop(None, []))
    known = [cid for cid in usage if cid is not None]
    snapshots = PricingContext(at or pricing_instant(period)).snapshots(known)
    drafts = {cid: build_invoice(items, snapshots[cid]) for cid, items in usage.items() if cid}
    return drafts, rows, orphans


def dry_run(
    *,
    period: Period,
    client: SolusIOClient,
    customer_id: int | None = None,
    progress: Progress = no_progress,
) -> CloseSummary:
    """What closing `period` would bill, from SolusIO's answer, storing nothing."""
    if settings.USAGE_SOURCE == "observed":
        drafts, rows, orphans = drafts_from_observed(period=period, customer_id=customer_id)
    else:
        drafts, rows, orphans = drafts_from_solusio(
            period=period, client=client, customer_id=customer_id, progress=progress
        )
    summary = CloseSummary(period=period.label, dry_run=True, rows=rows, orphans=orphans)
    per_currency: dict[str, dict[str, Any]] = {}
    for draft in drafts.values():
        figures = per_currency.setdefault(
            draft.pricing.currency,
            {
                "invoices": 0,
                "tokens": 0,
                "subtotal": Decimal(0),
                "taxes": Decimal(0),
                "total": Decimal(0),
            },
        )
        figures["invoices"] += 1
        figures["tokens"] += draft.tokens
        figures["subtotal"] += draft.totals.subtotal
        figures["taxes"] += draft.totals.total - draft.totals.subtotal
        figures["total"] += draft.totals.total
    summary.figures = {
        "customers": len(drafts),
        "lines": sum(len(d.lines) for d in drafts.values()),
        "discrepancies": sum(d.discrepancies for d in drafts.values()),
        "unknown_kinds": sum(rows for d in drafts.values() for _, rows, _ in d.unknown),
        "orphans": orphans,
        "by_status": {},
        "per_currency": dict(sorted(per_currency.items())),
    }
    return summary


@dataclass(frozen=True)
class Preview:
    period: Period
    draft: InvoiceDraft | None  # None: no usage so far
    as_of: datetime  # usage up to this instant
    live: bool  # read from SolusIO now, rather than from the last month-to-date pull


def preview_invoice(
    *,
    customer_id: int,
    client: SolusIOClient | None = None,
    now: datetime | None = None,
    live: bool = False,
) -> Preview:
    """What the current month costs the customer so far, through the same rules.

    From the last month-to-date pull when there is one (one indexed query; the hourly
    beat keeps it fresh), else — or with `live` — from SolusIO itself. SolusIO's usage
    list has no per-user filter, so a live preview reads the whole month's pages
    (streamed) and keeps the customer's rows: fine for a click, not for every page view.
    """
    now = now or timezone.now()
    period = period_containing(now, settings.BILLING_TIMEZONE)
    if settings.USAGE_SOURCE == "observed":
        # Observed usage is ours already: the intervals up to now, no SolusIO call.
        found, _, _ = drafts_from_observed(period=period, upto=now, customer_id=customer_id, at=now)
        return Preview(period, found.get(customer_id), now, live=False)
    context = PricingContext(now)
    stored = None if live else month_to_date_pull(period)
    if stored is not None and stored.upto is not None:
        items = [usage_input(v) for v in usage_of(period, [customer_id])]
        snapshot = context.snapshots([customer_id]).get(customer_id)
        draft = build_invoice(items, snapshot) if items and snapshot else None
        return Preview(period, draft, stored.upto, live=False)
    with given_or_own(client) as solusio:
        drafts, _, _ = drafts_from_solusio(
            period=period, client=solusio, upto=now, customer_id=customer_id, at=now
        )
    return Preview(period, drafts.get(customer_id), now, live=True)


def period_figures(period: Period, customer_id: int | None = None) -> dict[str, object]:
    """What the period's invoices and usage add up to: the close command's summary."""
    invoices = Invoice.objects.filter(period=period.month)
    usage = UsageRecord.objects.filter(period=period.month)
    if customer_id is not None:
        invoices = invoices.filter(customer_id=customer_id)
        usage = usage.filter(customer_id=customer_id)
    per_currency = {
        row["currency"]: {
            "invoices": row["n"],
            "tokens": row["tokens"] or 0,
            "subtotal": row["subtotal"] or Decimal(0),
            "taxes": row["taxes"] or Decimal(0),
            "total": row["total"] or Decimal(0),
        }
        for row in invoices.values("currency")
        .order_by("currency")
        .annotate(
            n=Count("id"),
            tokens=Sum("tokens"),
            subtotal=Sum("subtotal"),
            taxes=Sum("tax_total"),
            total=Sum("total"),
        )
    }
    by_status = dict(
        invoices.values_list("status")
        .order_by("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {
        "customers": invoices.count(),
        "lines": invoices.aggregate(n=Count("lines"))["n"] or 0,
        "discrepancies": invoices.aggregate(n=Sum("discrepancies"))["n"] or 0,
        "unknown_kinds": usage.filter(customer__isnull=False)
        .exclude(item__in=UsageItemKind.values)
        .count(),
        "orphans": usage.filter(customer__isnull=True).count() if customer_id is None else 0,
        "by_status": by_status,
        "per_currency": per_currency,
    }


def overdue_invoices(
    now: datetime, days: int, *, within: QuerySet[Invoice] | None = None
) -> QuerySet[Invoice]:
    """Issued invoices unpaid `days` after issue (of `within`, default all). One with
    nothing to pay is never overdue: issuing settles it, and this holds even if it did not."""
    invoices = Invoice.objects.all() if within is None else within
    return invoices.filter(
        status=InvoiceStatus.ISSUED, issued_at__lte=now - timedelta(days=days), total__gt=0
    )


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    pricing: CurrencyDisplay  # how to write this currency's sums
    tokens: int
    subtotal: Decimal
    total: Decimal


def invoice_totals(invoices: QuerySet[Invoice]) -> list[CurrencyTotal]:
    """Sums of `invoices` per currency, with the currency's display. A currency since
    deleted from the price book is written as its newest invoice wrote it."""
    rows = list(
        invoices.order_by("currency")
        .values("currency")
        .annotate(tokens=Sum("tokens"), subtotal=Sum("subtotal"), total=Sum("total"))
    )
    codes = [row["currency"] for row in rows]
    displays: dict[str, CurrencyDisplay] = {
        c.code: c for c in Currency.objects.filter(code__in=codes)
    }
    for code in set(codes) - set(displays):
        newest = invoices.filter(currency=code).order_by("-generated_at").first()
        assert newest is not None  # the code came from these invoices
        displays[code] = PricingSnapshot.from_json(newest.snapshot)
    return [
        CurrencyTotal(
            currency=row["currency"],
            pricing=displays[row["currency"]],
            tokens=row["tokens"] or 0,
            subtotal=row["subtotal"] or Decimal(0),
            total=row["total"] or Decimal(0),
        )
        for row in rows
    ]
