"""JSON with exact decimal numbers.

The standard encoder turns Decimal into float (noise such as 0.0010271400000000001) or
into a string. SolusIO expects JSON numbers, so Decimals are written in plain positional
notation from their exact digits, with trailing zeros dropped: Decimal("6.0000") -> 6,
Decimal("0.00102714") -> 0.00102714, never an exponent.
"""

import json
from decimal import Decimal
from typing import Any


def plain_decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"not a finite number: {value}")
    # Not Decimal.normalize(): it rounds to the context's 28 digits.
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def dumps(value: Any) -> str:
    """Serialise dicts, lists, str, int, bool, None and Decimal; floats are refused."""
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return json.dumps(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot serialise {type(value).__name__} exactly")
