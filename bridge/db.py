"""Database helpers that are not specific to one app."""

from django.core.management.color import no_style
from django.db import connection, models

# The largest id a BigAutoField (and so a PostgreSQL bigint) holds.
MAX_BIGINT = 2**63 - 1


def advance_id_sequence(*, model: type[models.Model], past_id: int) -> None:
    """Make sure the auto-id sequence of `model` will never hand out `past_id` or less.

    Rows created with an explicit id (imports keep the old billing system's ids) do not
    move PostgreSQL's sequence, so a later auto id would collide with them.

    Forward only, unlike Django's sequence_reset_sql (setval to max(id)): that max is taken
    from this transaction's snapshot, so it misses ids that concurrent, uncommitted inserts
    already drew and would move the sequence back under them. setval is not transactional;
    when the surrounding transaction rolls back the sequence stays advanced, which only
    leaves a gap in the ids.
    """
    table = model._meta.db_table
    column = model._meta.pk.column
    if connection.vendor != "postgresql":
        # SQLite and MySQL move their counters past explicit ids on their own; for the
        # rest, Django's reset to max(id) is the portable best effort.
        statements = connection.ops.sequence_reset_sql(no_style(), [model])
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_serial_sequence(%s, %s)", [connection.ops.quote_name(table), column]
        )
        sequence = cursor.fetchone()[0]
        if sequence is None:  # not an auto id: nothing hands out ids on its own
            return
        # Serialise explicit-id writers on this table until commit, so two of them cannot
        # interleave their read of the sequence and their setval.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"id-sequence:{table}"])
        # The name comes from the catalog, already quoted where needed.
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608
        last_value, is_called = cursor.fetchone()
        next_id = last_value + 1 if is_called else last_value
        if past_id >= next_id:
            cursor.execute("SELECT setval(%s::regclass, %s, true)", [sequence, past_id])
