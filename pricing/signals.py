"""Invalidate cached GetTokenPricing answers when anything that feeds them changes.

Signals, not service calls, because these rows change from the admin, the staff API,
imports and the shell alike, and a missed invalidation shows customers a wrong price.
Before a row is written the change begins (the database's generation is bumped in its
transaction, Redis's dropped); once the transaction commits it is confirmed.
Bulk `QuerySet.update()` sends no signal: code that uses it calls bump_generation itself.
"""

import threading
import time
from typing import Any

from django.db import transaction
from django.db.models.signals import (
    m2m_changed,
    post_delete,
    post_save,
    pre_delete,
    pre_save,
)

from pricing.models import Currency, Discount, PricingSettings, TaxRule
from pricing.services import answer_cache
from users.models import Customer

_last_bump = threading.local()


def _begin(sender: Any, **kwargs: Any) -> None:
    # Before the row is written: the generation row is then locked before the changed
    # row, in every transaction, so two changes cannot deadlock on the pair.
    answer_cache().begin_change()


def _confirm(sender: Any, **kwargs: Any) -> None:
    registered_at = time.monotonic_ns()

    def bump_once() -> None:
        # One bump per commit, however many rows it wrote (an import saves thousands): the
        # callbacks of a commit run one after another in this thread, and a bump made after
        # this change was registered — so after its commit — already covers it.
        if getattr(_last_bump, "at", -1) > registered_at:
            return
        _last_bump.at = time.monotonic_ns()
        answer_cache().bump_generation()

    # Robust: the change is committed already, and begun (Redis's generation dropped), so
    # a failed confirmation only means answers bypass the cache until the next one; it
    # must neither fail the request nor stop later commit hooks (the user sync's).
    transaction.on_commit(bump_once, robust=True)


def _m2m(sender: Any, action: str, **kwargs: Any) -> None:
    if action.startswith("pre_"):
        _begin(sender)
    else:
        _confirm(sender)


for model in (Currency, Discount, TaxRule, PricingSettings, Customer):
    name = model.__name__
    pre_save.connect(_begin, sender=model, dispatch_uid=f"pricing-begin-save-{name}")
    pre_delete.connect(_begin, sender=model, dispatch_uid=f"pricing-begin-del-{name}")
    post_save.connect(_confirm, sender=model, dispatch_uid=f"pricing-save-{name}")
    post_delete.connect(_confirm, sender=model, dispatch_uid=f"pricing-del-{name}")
m2m_changed.connect(
    _m2m, sender=Customer.discounts.through, dispatch_uid="pricing-customer-discounts"
)
