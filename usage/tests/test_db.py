"""`usage.db`: the `__any` lookup (the same rows as `__in`, as one array parameter), the
binary COPY and the upsert that returns what it wrote."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from usage import build, db
from usage.build import LINE_FIELDS
from usage.models import Invoice, InvoiceLine
from users.models import Customer

pytestmark = pytest.mark.django_db


def test_any_finds_what_in_finds(drafts: list[Invoice], customers: list[Customer]) -> None:
    ids = [c.pk for c in customers[:2]] + [10**9]
    with CaptureQueriesContext(connection) as queries:
        by_any = sorted(Invoice.objects.filter(customer_id__any=ids).values_list("pk", flat=True))
        assert sorted(Customer.objects.filter(pk__any=ids).values_list("pk", flat=True)) == ids[:2]
        assert Customer.objects.exclude(pk__any=ids).count() == len(customers) - 2
        assert not Customer.objects.filter(pk__any=[]).exists()
    assert by_any == sorted(
        Invoice.objects.filter(customer_id__in=ids).values_list("pk", flat=True)
    )
    assert by_any  # the fixture's drafts belong to these customers
    assert all(" = ANY(" in q["sql"] for q in queries.captured_queries)


def _line_rows(invoice_id: int) -> list[tuple[Any, ...]]:
    """Lines of every kind of value a close writes: text, whole numbers, a decimal with
    fewer places than its column (stored padded), a timestamp, NULLs, a boolean."""
    started = datetime(2026, 10, 1, 3, 4, 5, 123456, tzinfo=UTC)
    return [
        (invoice_id, 1, 7, "uuid-7", "web «1»", 2, "plan 'a'", "server", started, None,
         744, 7, 5000, "monthly_cap", 5000, Decimal("5"), None, False, None),
        (invoice_id, 2, 7, "uuid-7", "web\t1\n", 2, "plan\\b", "backup", started,
         started + timedelta(hours=3), 3, 7, 5000, "backups", 2, Decimal("0.0021"), 3, True,
         Decimal("10.5")),
    ]  # fmt: skip


def _stored_lines(invoice_id: int) -> list[tuple[Any, ...]]:
    return list(
        InvoiceLine.objects.filter(invoice_id=invoice_id)
        .order_by("position")
        .values_list(*LINE_FIELDS)
    )


def test_a_binary_copy_stores_what_a_text_copy_stores(drafts: list[Invoice]) -> None:
    first, second = drafts[0].pk, drafts[1].pk
    InvoiceLine.objects.filter(invoice_id__in=[first, second]).delete()
    with transaction.atomic():
        db.insert(InvoiceLine, LINE_FIELDS, _line_rows(first))
        db.insert(InvoiceLine, LINE_FIELDS, _line_rows(second), binary=True)
    text, binary = _stored_lines(first), _stored_lines(second)
    # repr: a decimal's places count too.
    assert [repr(row[1:]) for row in binary] == [repr(row[1:]) for row in text]
    assert repr(binary[0][15]) == "Decimal('5.0000')"
    assert repr(binary[1][15]) == "Decimal('0.0021')"
    assert binary[1][8] == datetime(2026, 10, 1, 3, 4, 5, 123456, tzinfo=UTC)


def test_upsert_returning_gives_the_rows_it_inserted_and_updated(drafts: list[Invoice]) -> None:
    kept, gone = drafts[0], drafts[1]
    Invoice.objects.filter(pk=gone.pk).delete()
    rows: list[tuple[Any, ...]] = [
        (invoice.customer_id, invoice.period, "draft", invoice.period_start, invoice.period_end,
         "USD", 1, Decimal(1), Decimal(0), Decimal(1), {}, [], 0, "", f"fp{i}",
         invoice.generated_at)
        for i, invoice in enumerate([kept, gone])
    ]  # fmt: skip
    with transaction.atomic():
        written = db.upsert_returning(
            Invoice,
            build._INVOICE_FIELDS,
            rows,
            build._INVOICE_KEY,
            where=~Q(status="void"),
            binary=True,
            returning=["customer", "id"],
        )
    stored = dict(
        Invoice.objects.filter(customer_id__in=[kept.customer_id, gone.customer_id])
        .exclude(status="void")
        .values_list("customer_id", "id")
    )
    assert written is not None
    assert dict(written) == stored
    assert stored[kept.customer_id] == kept.pk  # updated in place
    assert Invoice.objects.get(pk=kept.pk).fingerprint == "fp0"
