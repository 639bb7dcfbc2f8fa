"""Which usage a close bills (USAGE_SOURCE): SolusIO's `/usage`, our observations of
`/servers`, or both — `/usage` billed and checked line by line against the observations,
with the observations as the fallback when `/usage` is unusable."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Container
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.db.models.fields import BooleanField
from django.db.models.functions import Coalesce

from solusio.client import SolusIOClient
from solusio.errors import ClientError, SolusIOError
from solusio.usage_schema import UsageEndpointUnusable, UsageSchemaError
from usage import observe, pull
from usage.cycle import CloseError, Progress, no_progress
from usage.models import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    UsageItemKind,
    UsagePull,
    UsageRecord,
    UsageSourceGap,
)
from usage.rules import Period

log = logging.getLogger(__name__)

# (server, item, plan): the hours of a line, as each source counts them.
Key = tuple[int, str, int]


def usage_endpoint_unusable(exc: SolusIOError) -> bool:
    """`/usage` is not there (404/405) or answers a shape we cannot read: asking again will
    not help, and only another setting (or source) will."""
    if isinstance(exc, UsageEndpointUnusable | UsageSchemaError):
        return True
    return isinstance(exc, ClientError) and exc.status in (404, 405)


def unusable_message(client: SolusIOClient, exc: SolusIOError) -> str:
    """One line for the operator: the URL, what it answered, the setting to change."""
    if isinstance(exc, UsageEndpointUnusable):
        return str(exc)  # names the URL, the path settings and USAGE_SOURCE
    return (
        f"{client.base_url}{settings.SOLUSIO_USAGE_PATH} is unusable ({exc}); set "
        "USAGE_SOURCE=observed to bill from observed /servers, or USAGE_SOURCE=both to fall "
        "back to it"
    )


@dataclass
class PullPlan:
    """A pull begun (its generation) and cut into parts, a task each: ranges of `/usage`
    pages [first, last] (the last part open-ended: SolusIO may have more pages by the time
    it is read), or of observed server ids [first, last)."""

    source: str  # "usage_api" or "observed"
    generation: int
    fresh: bool  # the period had no stored rows: a plain insert will do
    parts: list[tuple[int, int | None]]
    fallback_reason: str = ""


def plan_pull(*, period: Period, client: SolusIOClient) -> PullPlan:
    """Begin the period's pull from the configured source (under `db.period_lock`) and cut
    it into parts of CLOSE_PULL_PAGES pages (when SolusIO says how many pages there are;
    else one part that follows the pages to the end) or CLOSE_PULL_SERVERS servers."""
    source = settings.USAGE_SOURCE
    if source == "observed":
        _require_observation(period)
        return _observed_plan(period)
    # Begun first: a pull SolusIO refuses shows, incomplete, beside the period.
    generation, fresh = pull.begin(period, "usage_api")
    try:
        pages = client.usage_page_count(period.start, period.end)
    except SolusIOError as exc:
        if not usage_endpoint_unusable(exc):
            raise
        message = unusable_message(client, exc)
        if source != "both":
            # The caller says it, once (the hourly task, the command).
            if isinstance(exc, UsageEndpointUnusable):
                raise  # its own type, for callers that tell it apart
            raise CloseError(message) from exc
        log.error("%s: falling back to observed usage: %s", period.label, message)
        _require_observation(period)
        return _observed_plan(period, f"Built from observed usage: {message}")
    per = settings.CLOSE_PULL_PAGES
    firsts = range(1, (pages or 1) + 1, per)
    parts: list[tuple[int, int | None]] = [(first, first + per - 1) for first in firsts]
    parts[-1] = (parts[-1][0], None)
    return PullPlan("usage_api", generation, fresh, parts)


def _observed_plan(period: Period, reason: str = "") -> PullPlan:
    generation, fresh = pull.begin(period, "observed")
    parts = observe.split_servers(period, settings.CLOSE_PULL_SERVERS)
    return PullPlan("observed", generation, fresh, list(parts), reason)


def store_part(
    *,
    period: Period,
    client: SolusIOClient | None,
    source: str,
    generation: int,
    fresh: bool,
    part: tuple[int, int | None],
    progress: Progress = no_progress,
    known: Container[int] | None = None,
) -> tuple[int, int]:
    """Store one part of a planned pull (under `db.period_lock`, shared): (rows, orphans).
    `known`: every customer's id, for a `/usage` part (read when not given)."""
    if source == "observed":
        first, last = part
        assert last is not None  # server ranges are closed
        return pull.store_observed(period, generation, fresh, (first, last), progress)
    if client is None:
        raise ValueError("a part of a /usage pull needs a SolusIO client")
    return pull.store_pages(
        period=period, end=period.end, client=client, generation=generation, fresh=fresh,
        pages=part, progress=progress, known=known,
    )  # fmt: skip


def _require_observation(period: Period) -> None:
    try:
        observe.require_complete_observation(period)
    except observe.ObservationError as exc:
        raise CloseError(str(exc)) from exc


def check_drafts(period: Period, customer_id: int | None) -> None:
    """After the build: with USAGE_SOURCE=both and a `/usage` pull, lines whose hours
    differ from the observed ones by more than one polling interval are discrepancies,
    and servers one source alone saw are listed. (A pull that fell back to observed usage
    gave every draft its hold reason in the build: `selectors.fallback_reason`.)"""
    pull = UsagePull.objects.filter(period=period.month).first()
    drafts = Invoice.objects.filter(period=period.month, status=InvoiceStatus.DRAFT)
    if customer_id is not None:
        drafts = drafts.filter(customer_id=customer_id)
    if pull is None or pull.source != "usage_api" or settings.USAGE_SOURCE != "both":
        return
    try:
        observed = _observed_hours(period, customer_id)
    except observe.ObservationError as exc:
        # Without a complete observation there is nothing to compare with: say so, bill
        # from /usage as configured.
        log.warning("%s: not compared with observed usage: %s", period.label, exc)
        return
    _flag_lines(period, drafts, observed)
    if customer_id is None:
        _list_gaps(period, observed)


# What the gap list compares: a server, and its paid backups (a backup line SolusIO bills
# and nobody observed is already a discrepancy; observed backups SolusIO does not bill have
# no line to flag, so they are listed).
GAP_ITEMS = (UsageItemKind.SERVER, UsageItemKind.BACKUP)
# (server, item) → (server name, customer, hours)
Seen = dict[tuple[int, str], tuple[str, int | None, int]]


@dataclass
class _Observed:
    hours: dict[Key, int]
    seen: Seen


def _observed_hours(period: Period, customer_id: int | None) -> _Observed:
    observe.require_complete_observation(period)
    hours: dict[Key, int] = defaultdict(int)
    seen: Seen = {}
    ids = None if customer_id is None else [customer_id]
    for row in observe.observed_rows(period, customer_ids=ids):
        server_id, item, plan_id, name, customer, n = (
            row[0],
            str(row[1]),
            row[8],
            row[7],
            row[14],
            row[10],
        )
        hours[(server_id, item, plan_id)] += n
        if item in GAP_ITEMS:
            _, _, before = seen.get((server_id, item), (name, customer, 0))
            seen[(server_id, item)] = (name, customer, before + n)
    return _Observed(hours, seen)


def _flag_lines(period: Period, drafts: object, observed: _Observed) -> None:
    """Each draft line's discrepancy: SolusIO's tokens differ from ours (as the build set
    it), or its (server, item, plan) hours differ from the observed by more than one
    polling interval. Idempotent: recomputed from both every time."""
    tolerance = observe.tolerance_hours()
    lines = InvoiceLine.objects.filter(invoice__in=drafts)  # type: ignore[misc]
    reported_differs = Q(reported_tokens__isnull=False) & ~Q(reported_tokens=F("tokens"))
    lines.update(discrepancy=ExpressionWrapper(reported_differs, output_field=BooleanField()))
    billed: dict[Key, int] = defaultdict(int)
    ids: dict[Key, list[int]] = defaultdict(list)
    for pk, server_id, item, plan_id, hours in lines.values_list(
        "pk", "server_id", "item", "plan_id", "hours"
    ):
        billed[(server_id, item, plan_id)] += hours
        ids[(server_id, item, plan_id)].append(pk)
    differing = [
        pk
        for key, hours in billed.items()
        if abs(hours - observed.hours.get(key, 0)) > tolerance
        for pk in ids[key]
    ]
    if differing:
        InvoiceLine.objects.filter(pk__in=differing).update(discrepancy=True)
    flagged = (
        InvoiceLine.objects.filter(invoice=OuterRef("pk"), discrepancy=True)
        .values("invoice")
        .annotate(n=Count("pk"))
        .values("n")
    )
    drafts.update(discrepancies=Coalesce(Subquery(flagged), 0))  # type: ignore[attr-defined]


def _list_gaps(period: Period, observed: _Observed) -> None:
    """Servers (and paid backups) billed from `/usage` but never observed in the period,
    and the reverse."""
    api: Seen = {}
    for server_id, item, name, customer, hours in UsageRecord.objects.filter(
        period=period.month, item__in=GAP_ITEMS
    ).values_list("server_id", "item", "server_name", "customer_id", "hours"):
        _, _, before = api.get((server_id, item), (name, customer, 0))
        api[(server_id, item)] = (name, customer, before + hours)

    def only(seen: Seen, other: Container[tuple[int, str]], by: str) -> list[UsageSourceGap]:
        return [
            UsageSourceGap(
                period=period.month,
                server_id=sid,
                item=item,
                server_name=name,
                customer_id=customer,
                seen_by=by,
                hours=hours,
            )
            for (sid, item), (name, customer, hours) in seen.items()
            if (sid, item) not in other
        ]

    gaps = only(api, observed.seen, UsageSourceGap.Seen.USAGE_API_ONLY) + only(
        observed.seen, api, UsageSourceGap.Seen.OBSERVED_ONLY
    )
    UsageSourceGap.objects.filter(period=period.month).delete()
    UsageSourceGap.objects.bulk_create(gaps, batch_size=2000)
