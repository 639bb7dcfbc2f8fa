#!/usr/bin/env python
"""Benchmark bank statement matching: a camt.053 of --entries credit transfers against
--invoices open invoices.

    .venv/bin/python bench/payments.py [--invoices 20000] [--entries 10000]
                                       [--unreferenced 0.05]

1. Creates the PostgreSQL database `bench_payments` (or $BENCH_PAYMENTS_DB; dropped and
   re-created), migrates it and loads the customers as bench/invoicing.py does, then
   --invoices issued invoices (USD or EUR as the customer's currency, totals spread over
   5.00-500.00, so some totals are unique and some shared).
2. Writes a camt.053.001.08 statement paying --entries distinct invoices in full: of the
   referenced entries, 60 % carry the RF reference structured (Strd/CdtrRefInf), 15 %
   write it in the text, 25 % write the invoice number (INV-000123 or "invoice 123");
   --unreferenced of them say only "hosting" and can match by amount alone, when exactly
   one open invoice has theirs. Every 50th entry of the file is a debit (skipped).
3. The import, in a child process (its peak RSS is its own): parse, store the entries,
   load the open balances once, match, record the payments
   (`payments.bank.services.import_statement`). Prints wall time, SQL queries, peak RSS,
   the share matched automatically and the expected share (every referenced entry plus
   the unreferenced ones whose amount is unique), and checks the invoices it paid.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("BENCH_INVOICING_DB", os.environ.get("BENCH_PAYMENTS_DB", "bench_payments"))

from bench.invoicing import QueryCounter, log, prepare_database, setup_django  # noqa: E402

IBAN = "DE89370400440532013000"
CAMT = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def make_invoices(count: int) -> None:
    """`count` issued invoices, one per customer and month going back from October 2026."""
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from usage.models import Invoice, InvoiceStatus
    from users.models import Customer

    customers = list(Customer.objects.order_by("id").values_list("id", "currency__code"))
    rng = random.Random(14)
    rows = []
    for index in range(count):
        customer_id, currency = customers[index % len(customers)]
        back = index // len(customers)  # 0 for October, 1 for September…
        month = 10 - back
        total = Decimal(rng.randint(500, 50_000)) / 100
        rows.append(
            Invoice(
                customer_id=customer_id,
                period=date(2026, month, 1),
                period_start=datetime(2026, month, 1, tzinfo=UTC),
                period_end=datetime(2026, month + 1, 1, tzinfo=UTC),
                status=InvoiceStatus.ISSUED,
                number=index + 1,
                currency=currency,
                subtotal=total,
                total=total,
                generated_at=datetime(2026, 11, 1, tzinfo=UTC),
                issued_at=datetime(2026, 11, 1, 1, tzinfo=UTC),
            )
        )
    Invoice.objects.bulk_create(rows, batch_size=5000)


def make_statement(entries: int, unreferenced: float) -> tuple[bytes, int]:
    """The camt.053 file and how many of its entries should match automatically."""
    from collections import Counter
    from xml.sax.saxutils import escape

    from payments import references
    from usage.models import Invoice

    invoices = list(Invoice.objects.values_list("number", "currency", "total"))
    shared = Counter((currency, total) for _n, currency, total in invoices)
    rng = random.Random(11649)
    paid = rng.sample(invoices, entries)
    expected = 0
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{CAMT}"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-11-30T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>BENCH-1</Id><Acct><Id><IBAN>{IBAN}</IBAN></Id></Acct>"
    ]
    for index, (number, currency, total) in enumerate(paid):
        roll = rng.random()
        structured = ""
        if index < entries * unreferenced:
            text = "hosting"
            # By amount only when no other open invoice has the same total (those paid
            # earlier in the file have left the pool, which can make a shared total unique:
            # counted as not expected, so the expected share is a floor).
            expected += shared[(currency, total)] == 1
        else:
            expected += 1
            if roll < 0.60:
                text, structured = "Thank you", references.for_invoice(number)
            elif roll < 0.75:
                text = f"Payment {references.grouped(references.for_invoice(number))}"
            elif roll < 0.875:
                text = f"INV-{number:06d} November"
            else:
                text = f"invoice {number}"
        remittance = (
            "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
            f"<Ref>{structured}</Ref></CdtrRefInf></Strd>"
            if structured
            else f"<Ustrd>{escape(text)}</Ustrd>"
        )
        parts.append(
            f'<Ntry><Amt Ccy="{currency}">{total:.2f}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
            f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-11-30</Dt></BookgDt>"
            f"<AcctSvcrRef>BENCH{index:08d}</AcctSvcrRef><NtryDtls><TxDtls>"
            f"<RltdPties><Dbtr><Pty><Nm>Customer {number}</Nm></Pty></Dbtr></RltdPties>"
            f"<RmtInf>{remittance}</RmtInf></TxDtls></NtryDtls></Ntry>"
        )
        if index % 50 == 0:
            parts.append(
                '<Ntry><Amt Ccy="USD">1.50</Amt><CdtDbtInd>DBIT</CdtDbtInd>'
                "<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-11-30</Dt></BookgDt>"
                f"<AcctSvcrRef>FEE{index:08d}</AcctSvcrRef></Ntry>"
            )
    parts.append("</Stmt></BkToCstmrStmt></Document>")
    return "".join(parts).encode(), expected


def stage(args: argparse.Namespace) -> dict[str, object]:
    """The import, in this (child) process."""
    setup_django(args.database_url)
    from django.db import connection

    from payments.bank import services
    from usage.models import Invoice, InvoiceStatus

    content = Path(args.file).read_bytes()
    counter = QueryCounter()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        summary = services.import_statement(content, filename="bench.xml")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "queries": counter.count,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "summary": summary.as_dict(),
        "paid_invoices": Invoice.objects.filter(status=InvoiceStatus.PAID).count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=20_000)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--unreferenced", type=float, default=0.05)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--stage", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args)))
        return 0
    if args.entries > args.invoices:
        parser.error("--entries pays distinct invoices: at most --invoices")

    prepare_database(args.database_url, min(args.invoices, 20_000))
    started = time.perf_counter()
    make_invoices(args.invoices)
    content, expected = make_statement(args.entries, args.unreferenced)
    made_in = time.perf_counter() - started
    log(f"{args.invoices:,} invoices and the statement made in {made_in:.1f}s")
    with tempfile.NamedTemporaryFile(suffix=".xml") as statement:
        statement.write(content)
        statement.flush()
        command = [
            sys.executable,
            __file__,
            "--stage",
            "--file",
            statement.name,
            "--database-url",
            args.database_url,
        ]
        out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    summary = result["summary"]
    entries = summary["entries"]
    load = os.getloadavg()
    print(
        f"statement: {entries:,} credit entries ({summary['skipped']} debits skipped), "
        f"{len(content) / 1e6:.1f} MB camt.053; {args.invoices:,} open invoices; "
        f"load {load[0]:.2f}"
    )
    print(
        f"import + match: {result['seconds']:.1f} s ({entries / result['seconds']:,.0f} "
        f"entries/s), {result['queries']:,} SQL queries "
        f"({result['queries'] / entries:.1f} per entry), peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    print(
        f"matched automatically: {summary['matched']:,} of {entries:,} "
        f"({summary['matched'] / entries:.1%}); expected at least {expected:,} "
        f"({expected / entries:.1%}); unmatched {summary['unmatched']:,}; "
        f"invoices paid {summary['invoices_paid']:,} (database: {result['paid_invoices']:,})"
    )
    ok = summary["matched"] >= expected and result["paid_invoices"] == summary["invoices_paid"]
    print("checks: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
