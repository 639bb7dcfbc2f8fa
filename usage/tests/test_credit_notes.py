"""Credit notes: voiding or correcting an issued invoice (DESIGN §6)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from bridge.money import NBSP, format_money
from payments import services as payments
from usage import close, invoice_states
from usage.models import BillingSettings, CreditNote, CreditNoteKind, Invoice, InvoiceStatus
from usage.pdf import render_credit_note_pdf
from usage.rules import PricingSnapshot, period_of_month
from usage.tests.test_invoice_pdf import (
    ISSUED_AT,
    buyer,  # noqa: F401 - a fixture
    issue,
    make_invoice,
    overlaps,
    seller,  # noqa: F401 - a fixture
    text_of,
    words_of,
)
from usage.tests.test_rules_invoice import SEED
from users.models import Customer

pytestmark = pytest.mark.django_db
AFTER = datetime(2029, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def issued(drafts: list[Invoice]) -> list[Invoice]:
    invoice_states.issue_invoices(invoice_ids=[d.pk for d in drafts])
    return list(Invoice.objects.filter(pk__in=[d.pk for d in drafts]).order_by("number"))


@pytest.mark.both_databases
def test_a_void_credits_the_invoice_with_every_amount_negated(drafts: list[Invoice]) -> None:
    invoice = issued(drafts)[0]
    invoice.taxes = [{"label": "VAT", "rate": "0.2", "base": "6.06", "amount": "1.21"}]
    invoice.tax_total, invoice.total = Decimal("1.21"), invoice.subtotal + Decimal("1.21")
    invoice.save()
    voided = invoice_states.void_invoice(invoice_id=invoice.pk, reason="Billed twice")
    assert (voided.status, voided.number) == (InvoiceStatus.VOID, invoice.number)
    note = CreditNote.objects.get(invoice=invoice)
    assert (note.display_number, note.kind, note.reason) == ("CN-000001", "void", "Billed twice")
    assert (note.subtotal, note.tax_total, note.total) == (
        -invoice.subtotal,
        Decimal("-1.21"),
        -invoice.total,
    )
    assert note.tokens == -invoice.tokens
    assert note.taxes == [{"label": "VAT", "rate": "0.2", "base": "-6.06", "amount": "-1.21"}]
    lines = list(invoice.lines.order_by("position"))
    assert [Decimal(x["amount"]) for x in note.lines] == [-line.amount for line in lines]
    assert [x["tokens"] for x in note.lines] == [-line.tokens for line in lines]
    assert sum(Decimal(x["amount"]) for x in note.lines) == note.subtotal
    assert (note.legal["seller"], note.legal["customer"]) == (
        invoice.legal["seller"],
        invoice.legal["customer"],
    )
    assert (note.legal["issue_date"], note.legal["due_date"]) == (
        f"{note.issued_at:%Y-%m-%d}",
        None,
    )
    assert note.legal["customer"]["id"] == invoice.customer_id
    assert note.currency == invoice.currency


@pytest.mark.both_databases
def test_a_retried_void_issues_exactly_one_credit_note(drafts: list[Invoice]) -> None:
    invoice = issued(drafts)[0]
    invoice_states.void_invoice(invoice_id=invoice.pk)
    with pytest.raises(invoice_states.InvoiceStateError, match="only an issued or paid invoice"):
        invoice_states.void_invoice(invoice_id=invoice.pk)
    assert CreditNote.objects.count() == 1
    # And the database holds it even if a caller skipped the state check.
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditNote.objects.create(
            invoice=invoice, number=99, kind="void", reason="x", issued_at=AFTER,
            currency="USD", tokens=0, subtotal=0, tax_total=0, total=0,
        )  # fmt: skip


@pytest.mark.both_databases
def test_drafts_are_not_credited_and_a_paid_invoice_credits_into_credit(
    drafts: list[Invoice],
) -> None:
    paid = issued(drafts[:1])[0]
    invoice_states.mark_paid(invoice_id=paid.pk)
    with pytest.raises(invoice_states.InvoiceStateError, match="draft"):
        invoice_states.correct_invoice(invoice_id=drafts[1].pk, reason="typo")
    with pytest.raises(invoice_states.InvoiceStateError, match="needs a reason"):
        invoice_states.void_invoice(invoice_id=paid.pk, reason="  ")
    assert not CreditNote.objects.exists()
    assert Invoice.objects.get(pk=paid.pk).status == InvoiceStatus.PAID
    # Voiding a paid invoice credits it; what was paid is the customer's credit again.
    invoice_states.void_invoice(invoice_id=paid.pk, reason="Cancelled order")
    assert CreditNote.objects.get().invoice_id == paid.pk
    assert payments.credit(paid.customer_id, paid.currency) == paid.total


@pytest.mark.both_databases
def test_a_correction_credits_the_invoice_and_opens_a_new_draft(
    drafts: list[Invoice], usd: Any, client: Any
) -> None:
    invoice = issued(drafts)[0]
    usd.token_price = Decimal("0.002")
    usd.save()
    note, draft = invoice_states.correct_invoice(invoice_id=invoice.pk, reason="Wrong price")
    assert (note.kind, note.number, note.total) == (CreditNoteKind.CORRECTION, 1, -invoice.total)
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.VOID
    assert (draft.customer_id, draft.period, draft.status) == (
        invoice.customer_id,
        invoice.period,
        InvoiceStatus.DRAFT,
    )
    assert draft.pk != invoice.pk
    assert (invoice.total, draft.total) == (Decimal("6.06"), Decimal("12.13"))  # new price
    assert draft.lines.count() == invoice.lines.count()
    # A re-run of the close keeps one live invoice per customer and period.
    close.close_cycle(
        period=period_of_month(2026, 10, "UTC"), client=client, now=AFTER, auto_issue=False
    )
    live = Invoice.objects.filter(customer_id=invoice.customer_id).exclude(status="void")
    assert list(live.values_list("pk", flat=True)) == [draft.pk]
    assert Invoice.objects.filter(customer_id=invoice.customer_id).count() == 2
    regenerated = invoice_states.regenerate_invoice(invoice_id=draft.pk)
    assert regenerated is not None
    assert regenerated.pk == draft.pk
    assert invoice_states.issue_invoice(invoice_id=draft.pk).number == 4  # after 1-3
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(
            customer_id=invoice.customer_id, period=invoice.period,
            period_start=invoice.period_start, period_end=invoice.period_end,
            currency="USD", generated_at=AFTER,
        )  # fmt: skip


@pytest.mark.both_databases
def test_a_plain_void_stays_the_periods_invoice_on_a_rerun(
    drafts: list[Invoice], client: Any
) -> None:
    invoice = issued(drafts)[0]
    invoice_states.void_invoice(invoice_id=invoice.pk)
    close.close_cycle(
        period=period_of_month(2026, 10, "UTC"), client=client, now=AFTER, auto_issue=True
    )
    assert list(Invoice.objects.filter(customer_id=invoice.customer_id)) == [invoice]


@pytest.mark.django_db(transaction=True)
def test_concurrent_voids_take_gap_free_credit_note_numbers(drafts: list[Invoice]) -> None:
    ids = [i.pk for i in issued(drafts)]
    barrier = threading.Barrier(len(ids) * 2)

    def void(invoice_id: int) -> str:
        """Each void on its own thread and connection; the second one of an invoice is
        refused (its first committed) or is the one that commits."""
        try:
            barrier.wait()
            invoice_states.void_invoice(invoice_id=invoice_id)
            return "voided"
        except invoice_states.InvoiceStateError:
            return "refused"
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(ids) * 2) as pool:
        outcomes = list(pool.map(void, ids * 2, timeout=60))  # each one twice
    assert sorted(outcomes) == ["refused"] * len(ids) + ["voided"] * len(ids)
    notes = CreditNote.objects.order_by("number")
    assert list(notes.values_list("number", flat=True)) == [1, 2, 3]
    assert sorted(notes.values_list("invoice_id", flat=True)) == sorted(ids)


def test_the_credit_note_pdf_is_titled_names_the_invoice_and_has_no_overlapping_words(
    seller: BillingSettings,  # noqa: F811 - the fixture imported above
    buyer: Customer,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    invoice = issue(make_invoice(buyer, SEED, 60))
    invoice_states.void_invoice(
        invoice_id=invoice.pk, reason="Billed to the wrong company", now=ISSUED_AT + DAY
    )
    note = CreditNote.objects.select_related("invoice").get(invoice=invoice)
    pdf = render_credit_note_pdf(note)
    (tmp_path / "credit-note.pdf").write_bytes(pdf)  # to look at: pytest --basetemp
    pages = words_of(pdf)
    assert len(pages) > 1
    for number, words in enumerate(pages, start=1):
        assert overlaps(words) == [], f"page {number}"
        page = " ".join(w["text"] for w in words)
        assert "Example Hosting Ltd · Credit note CN-000001" in page
        assert f"Page {number} of {len(pages)}" in page
    text = text_of(pdf)
    for required in (
        "Credit note CN-000001",
        "Credits invoice INV-000001 of 2 November 2026",
        "Issue date 3 November 2026",
        "Billed to the wrong company",
        "VAT id: GB123456789",
        "ACME Widgets GmbH",
        "VAT id: DE999999999",
        "web-060",
        "reverses invoice INV-000001 in full",
    ):
        assert required in text, required
    total = format_money(-invoice.total, PricingSnapshot.from_json(invoice.snapshot))
    assert f"Total {total}".replace(NBSP, " ") in text
    assert "Due date" not in text
