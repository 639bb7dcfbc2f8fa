"""Bank statement files to credit entries: ISO 20022 camt.053 (001.02 to 001.08 and
later: the elements read are the same in each) and a simple CSV.

Pure functions, no database. Anything unreadable raises StatementError with a message
for a person; nothing here lets a parser's own exception out."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from payments import references

MAX_FILE_BYTES = 50 * 1024 * 1024
_CAMT053 = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.\d\d$")


class StatementError(ValueError):
    """A file that is not a statement this reads: the message says what and where."""


@dataclass(frozen=True)
class ParsedEntry:
    external_id: str
    amount: Decimal  # positive: money in
    currency: str
    booked_on: date
    text: str
    structured_reference: str
    counterparty: str


@dataclass(frozen=True)
class ParsedStatement:
    format: str
    account: str
    entries: tuple[ParsedEntry, ...]
    skipped: int  # debits and entries not (yet) booked


def file_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def detect_format(content: bytes) -> str:
    head = content[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    return "camt053" if head.startswith(b"<") else "csv"


def parse(content: bytes, format: str | None = None) -> ParsedStatement:
    if len(content) > MAX_FILE_BYTES:
        raise StatementError(f"the file is larger than {MAX_FILE_BYTES // 1024 // 1024} MB")
    if not content.strip():
        raise StatementError("the file is empty")
    format = format or detect_format(content)
    if format == "camt053":
        return parse_camt053(content)
    if format == "csv":
        return parse_csv(content)
    raise StatementError(f"unknown format {format!r}: camt053 or csv")


def _synthetic_id(booked_on: date, amount: Decimal, text: str, occurrence: int) -> str:
    """For an entry the bank gave no reference: the same transfer listed by two
    overlapping statements hashes the same; two identical transfers on one day differ by
    their occurrence within the file."""
    key = f"{booked_on.isoformat()}|{amount:f}|{' '.join(text.split())}|{occurrence}"
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:40]


class _Occurrences:
    def __init__(self) -> None:
        self.seen: Counter[tuple[date, Decimal, str]] = Counter()

    def next(self, booked_on: date, amount: Decimal, text: str) -> int:
        key = (booked_on, amount, " ".join(text.split()))
        self.seen[key] += 1
        return self.seen[key] - 1


def _amount(text: str, where: str) -> Decimal:
    """1234.56, 1,234.56, 1234,56 and 1.234,56 all read 1234.56: a comma is the decimal
    mark unless a dot comes after it (so "1,234" reads 1.234, as in most of Europe)."""
    raw = text.strip().replace(" ", "").replace("\u00a0", "").replace("'", "")
    if "," in raw:
        if "." in raw and raw.rindex(".") > raw.rindex(","):
            raw = raw.replace(",", "")
        else:
            raw = raw.replace(".", "").replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise StatementError(f"{where}: {text.strip()!r} is not an amount") from None
    if not value.is_finite() or value != value.quantize(Decimal("0.0001")):
        raise StatementError(f"{where}: {text.strip()!r} is not an amount")
    return value


def _currency(text: str, where: str) -> str:
    code = text.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise StatementError(f"{where}: {text.strip()!r} is not a currency code")
    return code


def _date(text: str, where: str) -> date:
    text = text.strip()
    for pattern in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"):
        try:
            return datetime.strptime(text[:10], pattern).date()
        except ValueError:
            continue
    raise StatementError(f"{where}: {text!r} is not a date (YYYY-MM-DD or DD.MM.YYYY)")


# camt.053 ----------------------------------------------------------------------------


def parse_camt053(content: bytes) -> ParsedStatement:
    try:
        root = SafeET.fromstring(content, forbid_dtd=True)
    except DefusedXmlException:
        raise StatementError("the XML declares entities or a DTD, which are refused") from None
    except SafeET.ParseError as exc:
        raise StatementError(f"not well-formed XML ({exc})") from None
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if not _CAMT053.match(namespace) or root.tag != f"{{{namespace}}}Document":
        raise StatementError(
            "not a camt.053 statement: expected a Document in the namespace "
            "urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN"
        )
    ns = {"c": namespace}
    statements = root.findall("c:BkToCstmrStmt/c:Stmt", ns)
    if not statements:
        raise StatementError("the camt.053 document holds no statement (BkToCstmrStmt/Stmt)")
    accounts = {
        _text(s, "c:Acct/c:Id/c:IBAN", ns) or _text(s, "c:Acct/c:Id/c:Othr/c:Id", ns)
        for s in statements
    }
    if len(accounts) > 1:
        raise StatementError("the file holds statements of several accounts: import one each")
    entries: list[ParsedEntry] = []
    skipped = 0
    occurrences = _Occurrences()
    for s_index, statement in enumerate(statements, 1):
        for e_index, entry in enumerate(statement.findall("c:Ntry", ns), 1):
            where = f"statement {s_index}, entry {e_index}"
            parsed = _camt_entry(entry, ns, where, occurrences)
            if parsed is None:
                skipped += 1
            else:
                entries.append(parsed)
    return ParsedStatement("camt053", accounts.pop(), tuple(entries), skipped)


def _text(node: Element, path: str, ns: dict[str, str]) -> str:
    found = node.find(path, ns)
    return " ".join((found.text or "").split()) if found is not None else ""


def _camt_entry(
    entry: Element, ns: dict[str, str], where: str, occurrences: _Occurrences
) -> ParsedEntry | None:
    direction = _text(entry, "c:CdtDbtInd", ns)
    # .02 says Sts directly, .08 wraps the code: Sts/Cd.
    status = _text(entry, "c:Sts/c:Cd", ns) or _text(entry, "c:Sts", ns)
    if direction not in ("CRDT", "DBIT"):
        raise StatementError(f"{where}: CdtDbtInd is {direction!r}, not CRDT or DBIT")
    # A reversal (RvslInd) undoes an earlier entry: a "credit" that returns a debit.
    reversal = _text(entry, "c:RvslInd", ns).lower() in ("true", "1")
    if direction != "CRDT" or status != "BOOK" or reversal:
        return None
    amount_node = entry.find("c:Amt", ns)
    if amount_node is None or not (amount_node.text or "").strip():
        raise StatementError(f"{where}: no Amt")
    amount = _amount(amount_node.text or "", where)
    currency = _currency(amount_node.get("Ccy", ""), f"{where} (Amt/@Ccy)")
    booked = _text(entry, "c:BookgDt/c:Dt", ns) or _text(entry, "c:BookgDt/c:DtTm", ns)
    if not booked:
        raise StatementError(f"{where}: no booking date (BookgDt)")
    booked_on = _date(booked, where)
    if amount <= 0:
        raise StatementError(f"{where}: a credit of {amount}")
    unstructured: list[str] = []
    structured = ""
    counterparty = ""
    for remittance in entry.iterfind("c:NtryDtls/c:TxDtls/c:RmtInf", ns):
        unstructured += [
            " ".join((u.text or "").split()) for u in remittance.iterfind("c:Ustrd", ns)
        ]
        for ref in remittance.iterfind("c:Strd/c:CdtrRefInf/c:Ref", ns):
            structured = structured or references.compact(ref.text or "")
    for details in entry.iterfind("c:NtryDtls/c:TxDtls", ns):
        # .02: RltdPties/Dbtr/Nm; .08: RltdPties/Dbtr/Pty/Nm.
        counterparty = (
            counterparty
            or _text(details, "c:RltdPties/c:Dbtr/c:Nm", ns)
            or _text(details, "c:RltdPties/c:Dbtr/c:Pty/c:Nm", ns)
        )
    text = " ".join(u for u in unstructured if u) or _text(entry, "c:AddtlNtryInf", ns)
    external = _text(entry, "c:AcctSvcrRef", ns) or _text(
        entry, "c:NtryDtls/c:TxDtls/c:Refs/c:AcctSvcrRef", ns
    )
    if not external:
        occurrence = occurrences.next(booked_on, amount, text)
        external = _synthetic_id(booked_on, amount, text, occurrence)
    return ParsedEntry(
        external_id=external[:128],
        amount=amount,
        currency=currency,
        booked_on=booked_on,
        text=text[:1000],
        structured_reference=structured[:64],
        counterparty=counterparty[:255],
    )


# CSV ----------------------------------------------------------------------------------

# Column names accepted for each field (case-insensitive), first row is the header.
CSV_COLUMNS = {
    "date": ("date", "booking date", "booked", "buchungstag"),
    "amount": ("amount", "betrag"),
    "currency": ("currency", "ccy", "währung", "waehrung"),
    "reference": ("reference", "text", "remittance", "verwendungszweck", "description"),
    "counterparty": ("counterparty", "name", "payer", "debtor", "auftraggeber"),
    "id": ("id", "transaction id", "bank reference"),
}
_REQUIRED = ("date", "amount", "currency")


def parse_csv(content: bytes) -> ParsedStatement:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("latin-1")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(rows)]
    except StopIteration:
        raise StatementError("the CSV file is empty") from None
    except csv.Error as exc:
        raise StatementError(f"line 1: {exc}") from None
    column: dict[str, int] = {}
    for field, names in CSV_COLUMNS.items():
        for index, name in enumerate(header):
            if name in names:
                column[field] = index
                break
    missing = [f for f in _REQUIRED if f not in column]
    if missing:
        raise StatementError(
            "the CSV header lacks the column(s) "
            + ", ".join(missing)
            + " (expected: date, amount, currency, reference, counterparty)"
        )
    entries: list[ParsedEntry] = []
    skipped = 0
    occurrences = _Occurrences()

    def cell(row: list[str], field: str) -> str:
        index = column.get(field)
        return row[index].strip() if index is not None and index < len(row) else ""

    try:
        for row in rows:
            where = f"line {rows.line_num}"
            if not any(c.strip() for c in row):
                continue
            amount = _amount(cell(row, "amount"), where)
            if amount <= 0:
                skipped += 1
                continue
            booked_on = _date(cell(row, "date"), where)
            currency = _currency(cell(row, "currency"), where)
            remittance = " ".join(cell(row, "reference").split())
            external = cell(row, "id") or _synthetic_id(
                booked_on, amount, remittance, occurrences.next(booked_on, amount, remittance)
            )
            structured = ""
            if references.is_valid(remittance):
                structured = references.parse(remittance)
            entries.append(
                ParsedEntry(
                    external_id=external[:128],
                    amount=amount,
                    currency=currency,
                    booked_on=booked_on,
                    text=remittance[:1000],
                    structured_reference=structured,
                    counterparty=cell(row, "counterparty")[:255],
                )
            )
    except csv.Error as exc:
        raise StatementError(f"line {rows.line_num}: {exc}") from None
    return ParsedStatement("csv", "", tuple(entries), skipped)
