"""Translation catalogues (locale/<language>/LC_MESSAGES/django.po), in pure Python.

Compiling: the .mo files Django reads are build output (not in git). bin/setup, the
Dockerfile and the test run make them with Babel, so no machine needs GNU gettext.
Extracting: the strings the code and the customer-facing templates mark for translation, as
Django's makemessages finds them (templates go through Django's own `templatize`, then the
same Python extraction), so a test can tell which msgids a catalogue lacks.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

from babel.messages.extract import extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

BASE_DIR = Path(__file__).resolve().parent.parent
LOCALE_DIR = BASE_DIR / "locale"
DOMAIN = "django"
APPS = ("bridge", "pricing", "users", "usage", "payments", "solusio")
# The gettext functions Django's makemessages looks for, as Babel spells their arguments.
KEYWORDS = {
    "_": None,
    "gettext": None,
    "gettext_lazy": None,
    "gettext_noop": None,
    "ngettext": (1, 2),
    "ngettext_lazy": (1, 2),
    "pgettext": ((1, "c"), 2),
    "pgettext_lazy": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
    "npgettext_lazy": ((1, "c"), 2, 3),
}

MessageKey = tuple[str | None, str]  # (context, msgid)


def catalogues() -> list[Path]:
    return sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def compile_catalogues(*, only_stale: bool = False) -> list[Path]:
    """Write each catalogue's .mo beside it (fuzzy entries left out, as msgfmt does);
    `only_stale`: only where the .mo is missing or older than its .po. Returns the .mo
    files written."""
    written = []
    for po_path in catalogues():
        mo_path = po_path.with_suffix(".mo")
        if only_stale and mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name, domain=DOMAIN)
        # Written whole, then renamed: a process reading the old file never sees half, and
        # test workers compiling at once each write their own.
        partial = mo_path.with_name(f"{mo_path.name}.{os.getpid()}.partial")
        with partial.open("wb") as mo_file:
            write_mo(mo_file, catalog, use_fuzzy=False)
        partial.replace(mo_path)
        written.append(mo_path)
    return written


def _sources() -> Iterator[tuple[Path, bool]]:
    """(path, is_template) of every file that marks strings, tests and migrations aside.
    Admin templates are left out: they use the Django admin's own msgids, which Django's
    catalogues translate."""
    for app in APPS:
        root = BASE_DIR / app
        for path in sorted(root.rglob("*")):
            parts = path.relative_to(root).parts
            if "tests" in parts or "migrations" in parts or not path.is_file():
                continue
            if path.suffix == ".py":
                yield path, False
            elif "templates" in parts and "admin" not in parts and path.suffix in (".html", ".txt"):
                yield path, True


def extracted_messages() -> dict[MessageKey, str]:
    """Every marked string (plurals by their singular) and the first file that marks it."""
    from django.utils.translation.template import templatize

    found: dict[MessageKey, str] = {}
    for path, is_template in _sources():
        text = path.read_text(encoding="utf-8")
        if is_template:
            text = templatize(text, origin=str(path))
        for _lineno, message, _comments, context in extract(
            "python", io.BytesIO(text.encode("utf-8")), keywords=KEYWORDS
        ):
            msgid = message[0] if isinstance(message, tuple) else message
            if msgid:
                found.setdefault((context, msgid), str(path.relative_to(BASE_DIR)))
    return found
