"""Invalidate cached GetTokenPricing answers when anything that feeds them changes.

Signals, not service calls, because these rows change from the admin, the staff API,
imports and the shell alike, and a missed invalidation shows customers a wrong price.
Bulk `QuerySet.update()` sends no signal: code that uses it calls bump_generation itself.
"""

import threading
import time
from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from pricing.models import Currency, Discount, PricingSettings, TaxRule
from pricing.services import bump_generation
from users.models import Customer

_last_bump = threading.local()


def _invalidate(sender: Any, **kwargs: Any) -> None:
    registered_at = time.monotonic_ns()

    def bump_once() -> None:
        # One bump per commit, however many rows it wrote (an import saves thousands): the
        # callbacks of a commit run one after another in this thread, and a bump made after
        # this change was registered — so after its commit — already covers it.
        if getattr(_last_bump, "at", -1) > registered_at:
            return
        _last_bump.at = time.monotonic_ns()
        bump_generation()

    # Robust: with Redis down the change is committed already; a failed bump is logged
    # and must neither fail the request nor stop later commit hooks (the user-sync
    # delivery is one of them).
    transaction.on_commit(bump_once, robust=True)


for model in (Currency, Discount, TaxRule, PricingSettings, Customer):
    post_save.connect(_invalidate, sender=model, dispatch_uid=f"pricing-save-{model.__name__}")
    post_delete.connect(_invalidate, sender=model, dispatch_uid=f"pricing-del-{model.__name__}")
m2m_changed.connect(
    _invalidate, sender=Customer.discounts.through, dispatch_uid="pricing-customer-discounts"
)
