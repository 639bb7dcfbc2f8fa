"""Database helpers that are not specific to one app."""

from django.core.management.color import no_style
from django.db import connection, models


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
        # Serialise explicit-id writers on this table until commit, so two of them cannot
        # interleave their read of last_value and their setval.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"id-sequence:{table}"])
        cursor.execute(
            """
            SELECT setval(seq, %s)
            FROM (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq) AS s
            WHERE %s > COALESCE(pg_sequence_last_value(seq), 0)
            """,
            [past_id, connection.ops.quote_name(table), column, past_id],
        )
