"""The staff API's OpenAPI schema: drf-spectacular's, with the error answers every operation
can give (bridge.api's one error shape) documented, each with an example."""

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers

import bridge.api_examples  # noqa: F401 - attaches the serializers' examples

# Every error of the staff API (bridge.api.exception_handler).
ERROR = inline_serializer(
    name="Error",
    fields={
        "message": serializers.CharField(help_text="The first problem, as a sentence."),
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            help_text="Per field (non_field_errors: the whole body) its problems; {} if none.",
        ),
    },
)


def _error(description: str, message: str, errors: dict[str, list[str]] | None = None) -> Any:
    value = {"message": message, "errors": errors or {}}
    return OpenApiResponse(
        ERROR,
        description=description,
        examples=[OpenApiExample(description, value=value, response_only=True)],
    )


ALWAYS = {
    "401": _error("Not signed in", "Authentication credentials were not provided."),
    "403": _error("Not allowed", "You do not have permission to perform this action."),
    "503": _error(
        "Unavailable; Retry-After says when to retry where given",
        "The database is temporarily unavailable.",
    ),
}
NOT_FOUND = _error("No such object", "Not found.")
WRITES = ("POST", "PUT", "PATCH", "DELETE")


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = super()._get_response_bodies(direction)
        errors = dict(ALWAYS)
        if "{" in self.path:
            errors["404"] = NOT_FOUND
        if self.method in WRITES:
            errors["400"] = self._bad_input()
        for code, response in errors.items():
            if code not in responses:  # a view's own documented error wins
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return dict(sorted(responses.items()))

    def _bad_input(self) -> Any:
        """A 400 naming the operation's first required field, as a missing one would."""
        serializer = self.get_request_serializer()
        if isinstance(serializer, type):  # extend_schema(request=SomeSerializer) gives a class
            serializer = serializer()
        fields = getattr(serializer, "fields", None) or {}
        for name, field in fields.items():
            if field.required and not field.read_only:
                problem = "This field is required."
                return _error("Bad input", f"{name}: {problem}", {name: [problem]})
        problem = "Conflicts with existing data."
        return _error("Bad input", problem, {"non_field_errors": [problem]})
