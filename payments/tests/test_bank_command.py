"""`manage.py import_bank_statement`: the summary, and a clear error for a bad file."""

from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from payments.models import BankStatement
from usage.models import Invoice, InvoiceStatus
from users.models import Customer

pytestmark = pytest.mark.django_db
DATA = Path(__file__).parent / "data"


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("import_bank_statement", *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_matched_unmatched_and_duplicates(
    customer: Customer, issue: Callable[..., Invoice], tmp_path: Path
) -> None:
    invoice = issue(customer, 10, "30.00")
    statement = tmp_path / "bank.csv"
    statement.write_text(
        f"date,amount,currency,reference\n2026-11-29,30.00,USD,INV-{invoice.number:06d}\n"
    )
    out = run(str(statement), "--format", "csv", "--account", "DE89 3704 0044 0532 0130 00")
    assert "1 credit entries, 1 new, 0 duplicates" in out
    assert "matched 1, unmatched 0; 1 invoices paid" in out
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID
    assert BankStatement.objects.get().account == "DE89370400440532013000"
    assert "already imported: nothing changed" in run(str(statement))


@pytest.mark.parametrize(
    ("content", "message"),
    [("<Document>", "bad.xml: not well-formed XML"), ("date;amount\n", "lacks the column(s)")],
)
def test_a_bad_file_is_one_line_not_a_traceback(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(content)
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(str(bad))
    with pytest.raises(CommandError, match="cannot read"):
        run(str(tmp_path / "missing.xml"))
