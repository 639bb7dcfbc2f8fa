"""Reads for invoicing: customers' pricing snapshots, stored usage as rule inputs, overdue."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg
from django.db import connection
from django.db.models import Count, QuerySet, Sum

from pricing.models import Currency, Discount, PricingSettings, TaxRule
from pricing.selectors import discounts_in_force, tax_rules_for
from usage.bulk import column_names
from usage.models import Invoice, InvoiceStatus, UsagePull, UsageRecord
from usage.rules import Period, PricingSnapshot, UsageInput
from users.models import Customer

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
            customer_id__in=customer_ids
        ).values_list("customer_id", "discount_id"):
            links[customer_id].append(self._discounts[discount_id])
        out: dict[int, PricingSnapshot] = {}
        rows = Customer.objects.filter(pk__in=customer_ids).values_list(
            "pk", "currency_id", "country", "region", "billing_exempt"
        )
        for pk, currency_code, country, region, exempt in rows:
            out[pk] = self._snapshot(
                self._currencies[currency_code], links.get(pk, []), country, region, exempt
            )
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


def billed_customer_ids(period: Period, customer_id: int | None = None) -> list[int]:
    """Customers with stored usage in the period, in id order."""
    qs = UsageRecord.objects.filter(period=period.month, customer__isnull=False)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    return list(qs.order_by("customer_id").values_list("customer_id", flat=True).distinct())


def usage_of(period: Period, customer_ids: Sequence[int]) -> Iterable[Sequence[object]]:
    """The customers' stored rows as USAGE_FIELDS tuples, ordered by customer.

    On PostgreSQL one plain query with binary results: a close reads every stored row back
    once, and Django's row machinery (its text timestamp loader most of all) was six times
    the cost of psycopg's own binary loaders. Same values, same time zone (UTC)."""
    queryset = (
        UsageRecord.objects.filter(period=period.month, customer_id__in=list(customer_ids))
        .order_by("customer_id", "server_id", "item", "started_at")
        .values_list(*USAGE_FIELDS)
    )
    if connection.vendor != "postgresql":
        return queryset.iterator(chunk_size=5000)
    qn = connection.ops.quote_name
    columns = ", ".join(qn(c) for c in column_names(UsageRecord, USAGE_FIELDS))
    sql = (
        f"SELECT {columns} FROM {qn(UsageRecord._meta.db_table)} "  # noqa: S608
        "WHERE period = %s AND customer_id = ANY(%s) AND customer_id BETWEEN %s AND %s "
        "ORDER BY customer_id, server_id, item, started_at"
    )
    # The BETWEEN is implied by the ANY, but the planner can walk the (period, customer)
    # index with it: without it, every batch of the close scanned the whole period.
    ids = list(customer_ids)
    if not ids:
        return []
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, [period.month, ids, min(ids), max(ids)], binary=True)
        return cursor.fetchall()


def completed_pull(period: Period) -> UsagePull | None:
    """The period's pull, if it completed and covered the whole period."""
    return UsagePull.objects.filter(
        period=period.month, completed_at__isnull=False, upto__gte=period.end
    ).first()


def month_to_date_pull(period: Period) -> UsagePull | None:
    """The period's last completed pull, however far it reached."""
    return UsagePull.objects.filter(period=period.month, completed_at__isnull=False).first()


def period_closed(period: Period) -> bool:
    return UsagePull.objects.filter(period=period.month, closed_at__isnull=False).exists()


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
