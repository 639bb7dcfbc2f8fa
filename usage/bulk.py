"""Bulk writes for the cycle close: PostgreSQL COPY where available, bulk_create elsewhere.

A close writes one raw row per usage item and one line per item; at 100,000 servers that
is hundreds of thousands of rows, and Django's bulk_create spends most of its time
preparing and quoting parameters in Python. COPY streams the same rows as text.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, models


def copy_supported() -> bool:
    return connection.vendor == "postgresql"


def column_names(model: type[models.Model], fields: Sequence[str]) -> list[str]:
    return [model._meta.get_field(name).column for name in fields]  # type: ignore[union-attr,misc]


def copy_rows(
    model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY `rows` (tuples in `fields` order, Python values) into the model's table."""
    columns = ", ".join(connection.ops.quote_name(c) for c in column_names(model, fields))
    table = connection.ops.quote_name(model._meta.db_table)
    # The raw psycopg cursor's errors, as Django's (IntegrityError, ...), like any query.
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def copy_upsert(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Iterable[Sequence[Any]],
    conflict: Sequence[str],
) -> None:
    """Insert-or-update `rows` on the unique `conflict` fields: COPY into a temporary
    table shaped like the model's, then one INSERT … SELECT … ON CONFLICT DO UPDATE."""
    qn = connection.ops.quote_name
    if connection.get_autocommit():
        raise RuntimeError("copy_upsert needs a transaction (its stage table drops at commit)")
    table = qn(model._meta.db_table)
    stage = qn(f"stage_{model._meta.db_table}")
    columns = column_names(model, fields)
    column_list = ", ".join(qn(c) for c in columns)
    keys = set(column_names(model, conflict))
    updates = ", ".join(f"{qn(c)} = EXCLUDED.{qn(c)}" for c in columns if c not in keys)
    with connection.cursor() as cursor:
        # Only the copied columns (not the id). Dropped at commit; dropped here too, for a
        # second call in one transaction (savepoints do not fire ON COMMIT DROP).
        cursor.execute(f"DROP TABLE IF EXISTS {stage}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS "  # noqa: S608
            f"SELECT {column_list} FROM {table} WITH NO DATA"
        )
        with (
            connection.wrap_database_errors,
            cursor.cursor.copy(f"COPY {stage} ({column_list}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        conflict_list = ", ".join(qn(c) for c in column_names(model, conflict))
        cursor.execute(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {stage} "  # noqa: S608
            f"ON CONFLICT ({conflict_list}) DO UPDATE SET {updates}"
        )


def jsonb(value: Any) -> Any:
    """A JSON value for a COPY row (psycopg needs it wrapped)."""
    from psycopg.types.json import Jsonb

    return Jsonb(value)
