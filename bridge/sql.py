"""Raw SQL with its table and column names taken from the models' `_meta`, quoted, so a
renamed field or table cannot leave a statement behind."""

from __future__ import annotations

import functools

from django.db import connection, models


class Names:
    """A model's quoted table name (`{x}`) and column names (`{x.field}`) for str.format."""

    def __init__(self, model: type[models.Model]) -> None:
        self._model = model

    def __str__(self) -> str:
        return connection.ops.quote_name(self._model._meta.db_table)

    def __getattr__(self, field: str) -> str:
        found = self._model._meta.get_field(field)
        if not isinstance(found, models.Field) or not found.column:
            raise AttributeError(field)
        return connection.ops.quote_name(found.column)


@functools.cache  # the names are fixed once the models are loaded
def render(template: str, **tables: type[models.Model]) -> str:
    """`template` with `{name}` and `{name.field}` filled in for each model given as
    `name=Model`. Values stay parameters (`%(value)s`); only names are filled in."""
    return template.format(**{name: Names(model) for name, model in tables.items()})
