"""Importing bank statements and turning their credit entries into payments.

An import stores the file's entries once (a statement by its content hash, an entry by
its account and the bank's reference: unique constraints, so a file imported twice, or
two overlapping statements, record each transfer once), then matches the new entries
against all open invoices loaded in one grouped query (matching.Book) and records the
matched ones with services.record_payment, idempotent on the entry's reference."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from payments import services
from payments.bank import matching, parsing
from payments.bank.parsing import StatementError
from payments.models import BankEntry, BankStatement, EntryState, PaymentMethod
from usage import db
from usage.models import Invoice, InvoiceStatus
from users.models import Customer

log = logging.getLogger(__name__)
ZERO = Decimal(0)
# Entries recorded per transaction: a failure loses at most one batch's work (the
# payments are idempotent, so re-matching picks it up) and commits stay few.
BATCH = 1000

__all__ = [
    "EntryError",
    "ImportSummary",
    "StatementError",
    "assign",
    "ignore",
    "import_statement",
    "match_entries",
]


class EntryError(services.PaymentError):
    """A staff action an entry cannot take (already matched, ignored…)."""


@dataclass(frozen=True)
class ImportSummary:
    statement: int
    format: str
    account: str
    already_imported: bool
    entries: int  # credit entries in the file
    new: int
    duplicates: int  # already recorded from an earlier statement (or twice in this file)
    skipped: int  # debits and unbooked entries
    matched: int
    unmatched: int
    invoices_paid: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        head = "already imported: nothing changed. " if self.already_imported else ""
        return (
            f"{head}statement {self.statement} ({self.format}"
            f"{', ' + self.account if self.account else ''}): {self.entries} credit entries, "
            f"{self.new} new, {self.duplicates} duplicates, {self.skipped} skipped "
            f"(debits or not booked); matched {self.matched}, unmatched {self.unmatched}; "
            f"{self.invoices_paid} invoices paid"
        )


@dataclass(frozen=True)
class MatchResult:
    matched: int
    unmatched: int
    invoices_paid: int


def import_statement(
    content: bytes,
    *,
    filename: str = "",
    format: str | None = None,
    account: str = "",
    user: AbstractBaseUser | AnonymousUser | None = None,
    now: datetime | None = None,
) -> ImportSummary:
    """Store the statement's new credit entries and match them. StatementError for a
    file that cannot be read (nothing is stored then)."""
    now = now or timezone.now()
    digest = parsing.file_hash(content)
    existing = BankStatement.objects.filter(file_hash=digest).first()
    if existing is not None:
        return _summary(existing, already=True)
    parsed = parsing.parse(content, format)
    account = (parsed.account or account).replace(" ", "").upper()
    unique = {entry.external_id: entry for entry in parsed.entries}
    try:
        with transaction.atomic():
            statement = BankStatement.objects.create(
                file_hash=digest,
                filename=filename[:255],
                format=parsed.format,
                account=account,
                imported_at=now,
                imported_by=_actor(user),
                skipped=parsed.skipped,
            )
            BankEntry.objects.bulk_create(
                [
                    BankEntry(
                        statement=statement,
                        account=account,
                        external_id=entry.external_id,
                        amount=entry.amount,
                        currency=entry.currency,
                        booked_on=entry.booked_on,
                        text=entry.text,
                        structured_reference=entry.structured_reference,
                        counterparty=entry.counterparty,
                    )
                    for entry in unique.values()
                ],
                batch_size=2000,
                # An entry an earlier statement recorded stays that statement's.
                ignore_conflicts=True,
            )
            new_ids = list(
                BankEntry.objects.filter(statement=statement).values_list("id", flat=True)
            )
            # Counted with the entries: a process killed before matching leaves them
            # unmatched for staff (Match again), the statement saying what it holds.
            BankStatement.objects.filter(pk=statement.pk).update(
                entries=len(parsed.entries),
                duplicates=len(parsed.entries) - len(new_ids),
                unmatched=len(new_ids),
            )
    except IntegrityError:
        # The same file imported at the same moment by someone else: theirs stands.
        return _summary(BankStatement.objects.get(file_hash=digest), already=True)
    result = match_entries(new_ids, user=user, now=now)
    BankStatement.objects.filter(pk=statement.pk).update(
        matched=result.matched, unmatched=result.unmatched
    )
    statement.refresh_from_db()
    log.info(
        "bank statement %s imported: %s",
        statement.pk,
        _summary(statement, paid=result.invoices_paid),
    )
    return _summary(statement, paid=result.invoices_paid)


def _summary(statement: BankStatement, *, already: bool = False, paid: int = 0) -> ImportSummary:
    return ImportSummary(
        statement=statement.pk,
        format=statement.format,
        account=statement.account,
        already_imported=already,
        entries=statement.entries,
        new=0 if already else statement.entries - statement.duplicates,
        duplicates=statement.entries if already else statement.duplicates,
        skipped=statement.skipped,
        matched=0 if already else statement.matched,
        unmatched=0 if already else statement.unmatched,
        invoices_paid=paid,
    )


def load_book(numbers: Iterable[int] = ()) -> matching.Book:
    """Every open invoice with its balance (one grouped query), the invoices `numbers`
    name that are not open (paid or void: a transfer may name one), and the names of
    the customers with something open."""
    book = matching.Book()
    money = DecimalField(max_digits=20, decimal_places=4)
    rows = (
        Invoice.objects.filter(status=InvoiceStatus.ISSUED)
        .annotate(paid=Coalesce(Sum("allocations__amount"), Value(ZERO), output_field=money))
        .values_list("id", "number", "customer_id", "currency", "total", "paid")
    )
    for pk, number, customer_id, currency, total, paid in rows:
        assert number is not None  # an issued invoice has a number (a constraint)
        book.add(matching.OpenInvoice(pk, number, customer_id, currency, total - paid, open=True))
    others = set(numbers) - book.by_number.keys()
    if others:
        for pk, number, customer_id, currency, status in Invoice.objects.filter(
            number__in=others
        ).values_list("id", "number", "customer_id", "currency", "status"):
            assert number is not None  # asked for by number
            book.add(
                matching.OpenInvoice(
                    pk, number, customer_id, currency, ZERO, open=False,
                    void=status == InvoiceStatus.VOID,
                )
            )  # fmt: skip
    for pk, name, company in Customer.objects.filter(pk__in=list(book.by_customer)).values_list(
        "id", "name", "company_name"
    ):
        book.add_customer_name(pk, name, company)
    return book


def payment_reference(entry: BankEntry) -> str:
    """The payment's reference: the entry's, qualified by its account (two banks' own
    references may coincide)."""
    return f"{entry.account}:{entry.external_id}" if entry.account else entry.external_id


def _actor(user: AbstractBaseUser | AnonymousUser | None) -> Any:
    """The signed-in user who acted, or None (a command, an anonymous request)."""
    return user if isinstance(user, AbstractBaseUser) and user.is_authenticated else None


def _received_at(booked_on: date) -> datetime:
    return datetime(booked_on.year, booked_on.month, booked_on.day, tzinfo=UTC)


def _as_entry(row: BankEntry) -> matching.Entry:
    return matching.Entry(
        amount=row.amount,
        currency=row.currency,
        text=row.text,
        structured_reference=row.structured_reference,
        counterparty=row.counterparty,
    )


def match_entries(
    entry_ids: Sequence[int],
    *,
    user: AbstractBaseUser | AnonymousUser | None = None,
    now: datetime | None = None,
) -> MatchResult:
    """Match the unmatched entries among `entry_ids` and record the matched ones as
    payments; the others keep a reason and suggestions for staff. Safe to run again."""
    now = now or timezone.now()
    matched = unmatched = paid = 0
    rows = list(
        BankEntry.objects.filter(pk__in=entry_ids, state=EntryState.UNMATCHED).order_by(
            "booked_on", "id"
        )
    )
    entries = {row.pk: _as_entry(row) for row in rows}
    wanted = {n for e in entries.values() for n in matching.referenced_numbers(e)}
    book = load_book(wanted)
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        decisions = []
        for row in batch:
            decision = matching.decide(entries[row.pk], book)
            if decision.invoice is not None:
                # Later entries see the balance this transfer leaves.
                book.paid(decision.invoice, row.amount)
            decisions.append(decision)
        with transaction.atomic():
            outcomes = _record(batch, decisions, user=_actor(user), now=now)
            for row, decision, outcome in zip(batch, decisions, outcomes, strict=True):
                if isinstance(outcome, services.Recorded):
                    row.state, row.payment, row.reason, row.suggestions = (
                        EntryState.MATCHED, outcome.payment, "", [],
                    )  # fmt: skip
                    matched += 1
                    paid += len(outcome.settled)
                    continue
                if outcome is None:
                    row.reason, row.suggestions = decision.how[:500], list(decision.suggestions)
                else:
                    row.reason = str(outcome)[:500]
                    row.suggestions = list(matching.suggest(entries[row.pk], book))
                unmatched += 1
            # One UPDATE … FROM unnest: bulk_update's CASE per row took most of the import.
            db.update_each(
                BankEntry,
                [row.pk for row in batch],
                {
                    "state": [row.state for row in batch],
                    "payment": [row.payment.pk if row.payment else None for row in batch],
                    "reason": [row.reason for row in batch],
                    "suggestions": [row.suggestions for row in batch],
                },
            )
    return MatchResult(matched, unmatched, paid)


def _record(
    rows: Sequence[BankEntry],
    decisions: Sequence[matching.Decision],
    *,
    user: Any,
    now: datetime,
) -> list[services.Recorded | services.PaymentError | None]:
    """The matched entries recorded as payments in one bulk call (the same outcome as
    record_payment one by one); None for the entries matching left unmatched."""
    items = [
        services.PaymentIn(
            customer_id=decision.invoice.customer_id,
            amount=row.amount,
            currency=row.currency,
            method=PaymentMethod.BANK_TRANSFER,
            received_at=_received_at(row.booked_on),
            reference=payment_reference(row),
            invoice_id=decision.invoice.id,
            note=f"Bank transfer matched by {decision.how}: {row.text}"[:500],
        )
        for row, decision in zip(rows, decisions, strict=True)
        if decision.invoice is not None
    ]
    try:
        with transaction.atomic():
            recorded = iter(services.record_payments(items, user=user, now=now))
    except IntegrityError:
        # A reference recorded at this moment by another process: one by one, so only
        # that entry waits for staff.
        recorded = iter([_record_one(item, user=user, now=now) for item in items])
    return [next(recorded) if d.invoice is not None else None for d in decisions]


def _record_one(
    item: services.PaymentIn, *, user: Any, now: datetime
) -> services.Recorded | services.PaymentError:
    try:
        return services.record_payment(**vars(item), user=user, now=now)
    except services.PaymentError as exc:
        return exc


def assign(
    *,
    entry_id: int,
    invoice_id: int,
    user: AbstractBaseUser | AnonymousUser | None = None,
    now: datetime | None = None,
) -> services.Recorded:
    """Staff's choice: the unmatched entry pays `invoice_id` (then the customer's oldest
    open invoices; what is left is their credit)."""
    now = now or timezone.now()
    with transaction.atomic():
        entry = BankEntry.objects.select_for_update().get(pk=entry_id)
        if entry.state != EntryState.UNMATCHED:
            raise EntryError(f"the entry is {entry.get_state_display().lower()}, not unmatched")
        invoice = Invoice.objects.filter(pk=invoice_id).first()
        if invoice is None or invoice.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PAID):
            raise EntryError("choose an issued invoice")
        recorded = services.record_payment(
            customer_id=invoice.customer_id,
            amount=entry.amount,
            currency=entry.currency,
            method=PaymentMethod.BANK_TRANSFER,
            received_at=_received_at(entry.booked_on),
            reference=payment_reference(entry),
            invoice_id=invoice.pk,
            note=f"Bank transfer assigned by staff: {entry.text}"[:500],
            user=_actor(user),
            now=now,
        )
        entry.state, entry.payment, entry.reason, entry.suggestions = (
            EntryState.MATCHED, recorded.payment, "", [],
        )  # fmt: skip
        entry.save(update_fields=["state", "payment", "reason", "suggestions"])
    return recorded


def ignore(*, entry_ids: Iterable[int]) -> int:
    """Staff's choice: these unmatched entries are not customers' payments (a refund
    from a supplier, interest). Returns how many changed."""
    return BankEntry.objects.filter(
        Q(pk__in=list(entry_ids)) & Q(state=EntryState.UNMATCHED)
    ).update(state=EntryState.IGNORED)
