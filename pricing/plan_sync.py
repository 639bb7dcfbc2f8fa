"""Plans between SolusIO and the price book (Step 3): mirror, compare, push.

SolusIO owns the plans (their names, their existence); the bridge owns their prices in
tokens. Mirroring copies SolusIO's plans and remembers SolusIO's prices next to ours;
pushing sends ours with `PUT /plans/{id}`. A plan new to the bridge starts with the prices
SolusIO has, so mirroring alone never changes what customers pay.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from pricing.models import Plan
from solusio.connect import solusio_client


@dataclass(frozen=True)
class PlanDisagreement:
    plan_id: int
    name: str
    ours: tuple[int, int] | None  # (tokens per hour, tokens per month); None: not priced
    theirs: tuple[int, int] | None  # None: not in SolusIO

    def __str__(self) -> str:
        if self.theirs is None:
            return f"plan {self.plan_id} {self.name!r} is not in SolusIO"
        if self.ours is None:
            return f"plan {self.plan_id} {self.name!r} is not in the price book"
        return (
            f"plan {self.plan_id} {self.name!r}: SolusIO has {self.theirs[0]}/h "
            f"{self.theirs[1]}/month, the price book {self.ours[0]}/h {self.ours[1]}/month"
        )


@transaction.atomic
def mirror_plans() -> list[Plan]:
    """Fetch SolusIO's plans into the bridge; returns the plans SolusIO has."""
    now = timezone.now()
    mirrored: list[Plan] = []
    with solusio_client() as client:
        for remote in client.iter_plans():
            plan = Plan.objects.select_for_update().filter(pk=remote.id).first()
            if plan is None:
                plan = Plan(
                    id=remote.id,
                    tokens_per_hour=remote.tokens_per_hour,
                    tokens_per_month=remote.tokens_per_month,
                )
            plan.name = remote.name
            plan.solusio_tokens_per_hour = remote.tokens_per_hour
            plan.solusio_tokens_per_month = remote.tokens_per_month
            plan.solusio_ip_tokens_per_hour = remote.ip_tokens_per_hour
            plan.solusio_ip_tokens_per_month = remote.ip_tokens_per_month
            plan.solusio_backup_price = remote.backup_price
            plan.in_solusio = True
            plan.mirrored_at = now
            plan.save()
            mirrored.append(plan)
    Plan.objects.exclude(pk__in=[p.pk for p in mirrored]).update(in_solusio=False, mirrored_at=now)
    return mirrored


def disagreements() -> list[PlanDisagreement]:
    """Where the last mirror of SolusIO and the price book differ (no API call)."""
    found = []
    for plan in Plan.objects.order_by("id"):
        if plan.agrees_with_solusio is False:
            theirs = (
                (plan.solusio_tokens_per_hour or 0, plan.solusio_tokens_per_month or 0)
                if plan.in_solusio
                else None
            )
            found.append(
                PlanDisagreement(
                    plan.id, plan.name, (plan.tokens_per_hour, plan.tokens_per_month), theirs
                )
            )
    return found


def push_plan_prices(*, plan_ids: list[int] | None = None) -> list[Plan]:
    """PUT the price book's tokens per hour / month to SolusIO for these plans (default:
    every plan SolusIO has), recording what SolusIO answered."""
    plans = Plan.objects.filter(in_solusio=True).order_by("id")
    if plan_ids is not None:
        plans = plans.filter(pk__in=plan_ids)
    with solusio_client() as client:
        pushed = []
        for plan in plans:
            remote = client.update_plan_prices(
                plan.id,
                tokens_per_hour=plan.tokens_per_hour,
                tokens_per_month=plan.tokens_per_month,
            )
            Plan.objects.filter(pk=plan.pk).update(
                solusio_tokens_per_hour=remote.tokens_per_hour,
                solusio_tokens_per_month=remote.tokens_per_month,
                mirrored_at=timezone.now(),
            )
            plan.refresh_from_db()
            pushed.append(plan)
    return pushed
