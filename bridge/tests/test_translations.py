"""The translation catalogues (issue 12 §5): each one complete, in step with the strings the
code marks, its placeholders intact, and compiled into what Django reads."""

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from django.conf import settings
from django.utils import translation

from bridge import i18n

# %(name)s placeholders and %% (a literal percent sign).
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|%%")


def catalogue(path: Path) -> Catalog:
    with path.open("rb") as po_file:
        return read_po(po_file, locale=path.parent.parent.name, domain=i18n.DOMAIN)


def entries(path: Path) -> list[tuple[str | None, str, str]]:
    """(context, msgid, msgstr) of every message; plurals by their first forms."""
    found = []
    for message in catalogue(path):
        if not message.id:
            continue  # the header
        msgid = message.id if isinstance(message.id, str) else message.id[0]
        msgstr = message.string if isinstance(message.string, str) else (message.string or [""])[0]
        found.append((message.context, msgid, msgstr))
    return found


def test_every_language_but_the_bridges_own_has_a_catalogue() -> None:
    codes = {code for code, _name in settings.LANGUAGES} - {settings.LANGUAGE_CODE}
    assert codes == {path.parent.parent.name for path in i18n.catalogues()}
    assert "de" in codes


@pytest.mark.parametrize("path", i18n.catalogues(), ids=lambda p: p.parent.parent.name)
def test_a_catalogue_translates_everything_and_nothing_is_fuzzy(path: Path) -> None:
    catalog = catalogue(path)
    assert not catalog.fuzzy, "the header is marked fuzzy: msgfmt and Babel skip the file"
    untranslated = [msgid for _context, msgid, msgstr in entries(path) if not msgstr]
    fuzzy = [message.id for message in catalog if message.id and message.fuzzy]
    assert untranslated == []
    assert fuzzy == []


@pytest.mark.parametrize("path", i18n.catalogues(), ids=lambda p: p.parent.parent.name)
def test_a_catalogue_covers_exactly_the_strings_the_code_marks(path: Path) -> None:
    marked = i18n.extracted_messages()
    present = {(context, msgid) for context, msgid, _msgstr in entries(path)}
    missing = sorted(f"{where}: {key[1]!r}" for key, where in marked.items() if key not in present)
    stale = sorted(key[1] for key in present - set(marked))
    assert missing == [], "marked in the code, not in the catalogue"
    assert stale == [], "in the catalogue, no longer in the code"


@pytest.mark.parametrize("path", i18n.catalogues(), ids=lambda p: p.parent.parent.name)
def test_translations_keep_the_placeholders(path: Path) -> None:
    # A translation that drops or renames %(amount)s would fail only when that text is
    # rendered (a KeyError in an e-mail task); here it fails at once.
    for _context, msgid, msgstr in entries(path):
        assert sorted(_PLACEHOLDER.findall(msgid)) == sorted(_PLACEHOLDER.findall(msgstr)), msgid


def test_the_extraction_finds_code_and_template_strings_as_django_looks_them_up() -> None:
    marked = i18n.extracted_messages()
    assert marked[(None, "Monthly cap")] == "usage/rules.py"  # gettext_lazy
    assert marked[("date format", "j F Y")] == "usage/legal.py"  # pgettext
    assert (None, "Sign out") in marked  # {% translate %}
    # {% blocktranslate %} with a variable, as Django's templatize writes it.
    assert (None, "This month so far (%(month)s)") in marked
    assert not any("/tests/" in where for where in marked.values())


def test_the_compiled_catalogue_is_what_django_reads() -> None:
    i18n.compile_catalogues(only_stale=True)
    for path in i18n.catalogues():
        assert path.with_suffix(".mo").stat().st_mtime >= path.stat().st_mtime
    with translation.override("de"):
        assert translation.gettext("Total") == "Gesamtbetrag"
        assert translation.pgettext("date format", "j F Y") == "d.m.Y"
    with translation.override("en"):
        assert translation.gettext("Total") == "Total"
