"""Query-parameter filters shared by the staff API's lists (django-filter): each parses its
value strictly, so a bad value is a 400 naming the parameter instead of being ignored."""

from typing import Any

from django import forms
from django_filters import rest_framework as filters
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

# Ids are PostgreSQL bigints: a larger number is a bad value, not a database error.
MAX_ID = 2**63 - 1


class StrictBooleanField(forms.NullBooleanField):
    """true/false/1/0 (any case); anything else is an error, not "no filter"."""

    def to_python(self, value: Any) -> bool | None:  # type: ignore[override]
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError("Use true or false.")

    def validate(self, value: Any) -> None:
        return None


class BooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, **kwargs: Any) -> None:
        # A plain input hands the raw value to the field (django-filter's widget turns an
        # unknown value into None, which would mean "no filter").
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(**kwargs)


@extend_schema_field(OpenApiTypes.INT64)
class IdFilter(filters.NumberFilter):
    """A whole-number id in the database's range."""

    field_class = forms.IntegerField

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


class CodeField(forms.CharField):
    """An ISO code of `length` letters, compared upper-case."""

    def __init__(self, *, length: int, **kwargs: Any) -> None:
        self.length = length
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        text = str(super().to_python(value)).strip().upper()
        if text and not (len(text) == self.length and text.isascii() and text.isalpha()):
            raise forms.ValidationError(f"Use a {self.length}-letter ISO code.")
        return text


class CodeFilter(filters.CharFilter):
    field_class = CodeField


def valid(filterset: filters.FilterSet) -> filters.FilterSet:
    """`filterset`, or the staff API's 400 naming each bad parameter (as the list views'
    DjangoFilterBackend answers)."""
    if not filterset.is_valid():
        raise translate_validation(filterset.errors)
    return filterset
