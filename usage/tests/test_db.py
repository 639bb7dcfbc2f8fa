"""`usage.db`'s `__any` lookup: the same rows as `__in`, as one array parameter."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from usage.models import Invoice
from users.models import Customer

pytestmark = pytest.mark.django_db


def test_any_finds_what_in_finds(drafts: list[Invoice], customers: list[Customer]) -> None:
    ids = [c.pk for c in customers[:2]] + [10**9]
    with CaptureQueriesContext(connection) as queries:
        by_any = sorted(Invoice.objects.filter(customer_id__any=ids).values_list("pk", flat=True))
        assert sorted(Customer.objects.filter(pk__any=ids).values_list("pk", flat=True)) == ids[:2]
        assert Customer.objects.exclude(pk__any=ids).count() == len(customers) - 2
        assert not Customer.objects.filter(pk__any=[]).exists()
    assert by_any == sorted(
        Invoice.objects.filter(customer_id__in=ids).values_list("pk", flat=True)
    )
    assert by_any  # the fixture's drafts belong to these customers
    assert all(" = ANY(" in q["sql"] for q in queries.captured_queries)
