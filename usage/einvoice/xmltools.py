"""What the CII and UBL writers share: prefixed elements, prices, EN 16931 codes."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from lxml import etree

COMMERCIAL_INVOICE = "380"  # UNTDID 1001
CREDIT_NOTE = "381"
UNIT_ONE = "C62"  # UN/ECE rec. 20 "one": the unit a line's tokens are counted in


def element(
    namespaces: Mapping[str, str],
    parent: etree._Element,
    tag: str,
    text: str | None = None,
    **attrib: str,
) -> etree._Element:
    """`parent`'s new child `prefix:name`, with `text` and attributes."""
    prefix, name = tag.split(":")
    child = etree.SubElement(parent, f"{{{namespaces[prefix]}}}{name}", attrib)
    if text is not None:
        child.text = text
    return child


def price_text(value: Decimal) -> str:
    """A unit price or rate exactly, without trailing zeros: prices are never rounded."""
    return f"{value.normalize():f}" if value else "0"
