"""ISO 11649 RF references: derived from the invoice number, read back, every typo caught."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iso11649

from payments import references

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
bodies = st.text(alphabet=ALPHABET, min_size=1, max_size=21)
numbers = st.integers(min_value=1, max_value=10**21 - 1)


def test_the_standard_s_example() -> None:
    # ISO 11649's own example, with python-stdnum as the independent oracle.
    assert references.make("539007547034") == "RF18539007547034"
    assert references.grouped("RF18539007547034") == "RF18 5390 0754 7034"
    assert iso11649.is_valid("RF18539007547034")


def test_an_invoice_reference_reads_back_to_its_number() -> None:
    assert references.for_invoice(123) == "RF78000000123"
    assert references.grouped(references.for_invoice(123)) == "RF78 0000 0012 3"
    assert references.invoice_number("rf78 0000 0012 3") == 123
    assert references.invoice_number(references.make("ABC123")) is None


@given(numbers)
def test_round_trip_for_any_invoice_number(number: int) -> None:
    reference = references.for_invoice(number)
    assert len(reference) <= references.MAX_LENGTH
    assert iso11649.is_valid(reference)
    for written in (
        reference,
        references.grouped(reference),
        references.grouped(reference).lower(),
    ):
        assert references.parse(written) == reference
        assert references.invoice_number(written) == number


@given(bodies)
def test_any_body_makes_a_reference_the_oracle_accepts(body: str) -> None:
    reference = references.make(body)
    assert iso11649.is_valid(reference)
    assert references.parse(references.grouped(reference)) == reference


@given(bodies, st.data())
def test_any_single_character_change_is_detected(body: str, data: st.DataObject) -> None:
    reference = references.make(body)
    position = data.draw(st.integers(min_value=2, max_value=len(reference) - 1))
    allowed = "0123456789" if position < 4 else ALPHABET
    replacement = data.draw(st.sampled_from([c for c in allowed if c != reference[position]]))
    typo = reference[:position] + replacement + reference[position + 1 :]
    assert not references.is_valid(typo)
    with pytest.raises(references.InvalidReference):
        references.parse(typo)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "RF",
        "RF1",
        "XX18539007547034",
        "RF1853900754703!",
        "RFAB539007547034",
        "RF18" + "1" * 22,
    ],
)
def test_malformed_references_are_refused(text: str) -> None:
    assert not references.is_valid(text)


def test_references_are_found_in_free_text() -> None:
    reference = references.for_invoice(4711)
    text = f"SEPA transfer {references.grouped(reference).lower()} 2026 thank you"
    assert references.find_in_text(text)[0] == reference
    assert references.find_in_text("no reference here, RF12 nothing") == []
    with pytest.raises(references.InvalidReference):
        references.for_invoice(0)
