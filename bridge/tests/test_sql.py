"""Names in raw SQL come from the models, quoted for the database in use."""

import pytest
from django.db import connection

from bridge.sql import render
from users.models import SolusioAccount, SyncRecord

pytestmark = pytest.mark.both_databases


def test_tables_and_columns_come_from_the_models() -> None:
    q = connection.ops.quote_name
    sql = render(
        "SELECT {r.customer_id}, {a.customer} FROM {r}, {a}", r=SyncRecord, a=SolusioAccount
    )
    words = ["SELECT", q("customer_id") + ",", q("customer_id"), "FROM"]
    words += [q(SyncRecord._meta.db_table) + ",", q(SolusioAccount._meta.db_table)]
    assert sql == " ".join(words)


def test_a_field_the_model_does_not_have_is_an_error() -> None:
    with pytest.raises(Exception, match="no_such_field"):
        render("SELECT {r.no_such_field} FROM {r}", r=SyncRecord)
