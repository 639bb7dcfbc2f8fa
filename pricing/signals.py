"""Invalidate cached GetTokenPricing answers when anything that feeds them changes.

Signals, not service calls, because these rows change from the admin, the staff API,
imports and the shell alike, and a missed invalidation shows customers a wrong price.
Bulk `QuerySet.update()` sends no signal: code that uses it calls bump_generation itself.
"""

from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from pricing.models import Currency, Discount, PricingSettings, TaxRule
from pricing.services import bump_generation
from users.models import Customer


def _invalidate(sender: Any, **kwargs: Any) -> None:
    transaction.on_commit(bump_generation)


for model in (Currency, Discount, TaxRule, PricingSettings, Customer):
    post_save.connect(_invalidate, sender=model, dispatch_uid=f"pricing-save-{model.__name__}")
    post_delete.connect(_invalidate, sender=model, dispatch_uid=f"pricing-del-{model.__name__}")
m2m_changed.connect(
    _invalidate, sender=Customer.discounts.through, dispatch_uid="pricing-customer-discounts"
)
