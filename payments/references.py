"""ISO 11649 structured creditor references ("RF" references) for bank transfers.

`RF` + two check digits + up to 21 letters and digits; the check digits make the whole
reference ≡ 1 (mod 97) under ISO 7064 MOD 97-10 once "RF" and its check digits are moved
to the end and letters read as 10..35 (A..Z). Any single changed character and most
transpositions are caught, which is why banks in the SEPA area validate it at entry.

An invoice's reference is derived from its number alone (`RF` + check + the number
zero-padded to 9 digits), so it never needs storing and reads back to the number."""

from __future__ import annotations

import re

PREFIX = "RF"
MAX_LENGTH = 25  # "RF", two check digits, at most 21 characters of reference
_BODY_MAX = MAX_LENGTH - 4
_NUMBER_WIDTH = 9
_ALPHANUMERIC = re.compile(r"[0-9A-Z]+")
# An RF reference inside free text, its groups possibly split by single spaces.
_IN_TEXT = re.compile(r"RF\s?\d{2}(?:\s?[0-9A-Z]){1,21}", re.IGNORECASE)


class InvalidReference(ValueError):
    """Not a well-formed RF reference (a stable message for forms and the API)."""


def _as_digits(text: str) -> int:
    # ISO 7064 reads a letter as two digits: A=10 … Z=35 (int(c, 36) does exactly that).
    return int("".join(str(int(c, 36)) for c in text))


def check_digits(body: str) -> str:
    """The two check digits for `body` (already compact and upper case)."""
    return f"{98 - _as_digits(body + PREFIX + '00') % 97:02d}"


def make(body: str) -> str:
    """The compact RF reference for a body of 1..21 letters and digits."""
    body = body.replace(" ", "").upper()
    if not 1 <= len(body) <= _BODY_MAX or not _ALPHANUMERIC.fullmatch(body):
        raise InvalidReference(f"a reference body is 1 to {_BODY_MAX} letters and digits")
    return f"{PREFIX}{check_digits(body)}{body}"


def compact(text: str) -> str:
    """Spaces removed, upper case: the form to store and compare."""
    return "".join(text.split()).upper()


def parse(text: str) -> str:
    """The compact reference if `text` is a valid RF reference (spaces and any case
    allowed), else InvalidReference."""
    reference = compact(text)
    if not reference.startswith(PREFIX):
        raise InvalidReference("an RF reference starts with RF")
    if not 5 <= len(reference) <= MAX_LENGTH:
        raise InvalidReference(f"an RF reference is 5 to {MAX_LENGTH} characters long")
    if not _ALPHANUMERIC.fullmatch(reference) or not reference[2:4].isdigit():
        raise InvalidReference("an RF reference is RF, two check digits, letters and digits")
    if _as_digits(reference[4:] + reference[:4]) % 97 != 1:
        raise InvalidReference("the check digits do not match: a character is wrong")
    return reference


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except InvalidReference:
        return False
    return True


def grouped(reference: str) -> str:
    """Printed in groups of four, as ISO 11649 recommends: "RF18 0000 0012 3"."""
    reference = compact(reference)
    return " ".join(reference[i : i + 4] for i in range(0, len(reference), 4))


def for_invoice(number: int) -> str:
    """The compact RF reference of invoice `number`."""
    if number < 1:
        raise InvalidReference("only an issued invoice (numbered from 1) has a reference")
    return make(f"{number:0{_NUMBER_WIDTH}d}")


def invoice_number(reference: str) -> int | None:
    """The invoice number an invoice reference stands for; None for a valid reference
    that is not one of ours (letters in it), InvalidReference for an invalid one."""
    body = parse(reference)[4:]
    return int(body) if body.isdigit() and int(body) > 0 else None


def find_in_text(text: str) -> list[str]:
    """The valid RF references written in free text (a bank's remittance line), in order.
    A reference is often followed by other words or digits, so every valid prefix of a
    candidate is returned, longest first: a wrong length passes the check only by a
    1-in-97 chance, and the caller takes the first that names one of its invoices."""
    found: list[str] = []
    for match in _IN_TEXT.finditer(text):
        candidate = compact(match.group())
        found += [
            candidate[:end] for end in range(len(candidate), 4, -1) if is_valid(candidate[:end])
        ]
    return found
