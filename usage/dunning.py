"""Dunning: an issued invoice unpaid `dunning_days` after issue suspends its customer (through
the user sync); settling the last overdue invoice reactivates them. Only dunning's own
suspensions are lifted here; every step is a DunningEvent for staff."""

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from usage import selectors
from usage.models import BillingSettings, DunningAction, DunningEvent, Invoice
from users.models import Customer, CustomerStatus, SyncRecord, SyncRecordState, SyncState
from users.services import change_customer_status

log = logging.getLogger(__name__)


def sweep(*, now: datetime | None = None) -> int:
    """Suspend every active customer with an overdue invoice. Returns how many."""
    now = now or timezone.now()
    note_undelivered(now=now)
    days = BillingSettings.load().dunning_days
    if days <= 0:
        return 0
    overdue = (
        selectors.overdue_invoices(now, days)
        .filter(customer__status=CustomerStatus.ACTIVE)
        .order_by("customer_id", "issued_at")
    )
    first_per_customer: dict[int, Invoice] = {}
    for invoice in overdue:
        first_per_customer.setdefault(invoice.customer_id, invoice)
    suspended = 0
    for customer_id, invoice in first_per_customer.items():
        reason = f"{invoice.display_number} ({invoice.period:%Y-%m}) unpaid {days} days after issue"
        with transaction.atomic():
            # Locked, so a payment that lands meanwhile is seen (and wins).
            customer = Customer.objects.select_for_update().get(pk=customer_id)
            still = Invoice.objects.filter(pk=invoice.pk, status=invoice.status).exists()
            if customer.status != CustomerStatus.ACTIVE or not still:
                continue
            change_customer_status(
                customer_id=customer_id, status=CustomerStatus.SUSPENDED, reason=reason
            )
            DunningEvent.objects.create(
                customer_id=customer_id,
                invoice=invoice,
                action=DunningAction.SUSPENDED,
                reason=reason,
                at=now,
                sync_record=_newest_sync_record(customer_id),
            )
        log.info("dunning suspended customer %s: %s", customer_id, reason)
        suspended += 1
    return suspended


def reactivate_if_settled(*, customer_id: int, now: datetime | None = None) -> bool:
    """After a payment or a void: lift dunning's suspension when nothing else is overdue."""
    now = now or timezone.now()
    days = BillingSettings.load().dunning_days
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        if customer.status != CustomerStatus.SUSPENDED:
            return False
        last = (  # newest first; a failed delivery does not make the suspension staff's
            DunningEvent.objects.filter(customer_id=customer_id)
            .exclude(action=DunningAction.FAILED)
            .first()
        )
        if last is None or last.action != DunningAction.SUSPENDED:
            return False  # suspended by staff, not by dunning
        if (
            days > 0
            and selectors.overdue_invoices(now, days).filter(customer_id=customer_id).exists()
        ):
            return False
        reason = "overdue invoices settled"
        change_customer_status(customer_id=customer_id, status=CustomerStatus.ACTIVE, reason=reason)
        DunningEvent.objects.create(
            customer_id=customer_id,
            action=DunningAction.REACTIVATED,
            reason=reason,
            at=now,
            sync_record=_newest_sync_record(customer_id),
        )
    log.info("dunning reactivated customer %s", customer_id)
    return True


def _newest_sync_record(customer_id: int) -> SyncRecord | None:
    # The status change's own record: called under the customer's row lock, right after
    # change_customer_status wrote it, so no other change of this customer came between.
    return SyncRecord.objects.filter(customer_id=customer_id).order_by("-id").first()


def note_undelivered(*, now: datetime | None = None) -> int:
    """Log a `failed` step for each dunning status change that cannot reach SolusIO: its
    sync record is parked, or waits behind a parked one (both need staff). Once per step.
    Returns how many were logged."""
    now = now or timezone.now()
    failed = DunningEvent.objects.filter(
        action=DunningAction.FAILED, sync_record=OuterRef("sync_record")
    )
    stuck = (
        DunningEvent.objects.filter(action__in=[DunningAction.SUSPENDED, DunningAction.REACTIVATED])
        .filter(
            Q(sync_record__state=SyncRecordState.PARKED)
            | Q(
                sync_record__state=SyncRecordState.PENDING,
                customer__solusio__state=SyncState.PARKED,
            )
        )
        .exclude(Exists(failed))
        .select_related("sync_record")
        .order_by("id")
    )
    logged = 0
    for event in stuck:
        record = event.sync_record
        assert record is not None  # the filter above
        why = record.last_error if record.state == SyncRecordState.PARKED else "behind a parked one"
        step = "suspension" if event.action == DunningAction.SUSPENDED else "reactivation"
        reason = f"the {step} did not reach SolusIO (user sync parked): {why}"
        DunningEvent.objects.create(
            customer_id=event.customer_id,
            invoice_id=event.invoice_id,
            action=DunningAction.FAILED,
            reason=reason[:255],
            at=now,
            sync_record=record,
        )
        log.warning("dunning: customer %s: %s", event.customer_id, reason)
        logged += 1
    return logged
