"""GetTokenPricing answers: computed from the database (render) and served through the
process's answer cache (pricing/answercache.py)."""

import threading

from django.db import transaction
from django.utils import timezone

from bridge import jsonnum
from pricing import answercache
from pricing.answercache import NOT_FOUND, AnswerCache
from pricing.selectors import ReferenceData, reference_data, token_pricing

__all__ = ["NOT_FOUND", "answer_cache", "bump_generation", "pricing_answer", "render"]

# The reference data (currencies, discounts, tax rules, settings) of the last generation
# this process computed an answer under. Right after a change every customer's answer is
# recomputed, and with this each costs one query instead of four. Loaded after the
# generation was read, so it is at least as new as the generation it is kept for.
_reference: tuple[bytes, ReferenceData] | None = None


def _reference_for(generation: bytes | None) -> ReferenceData | None:
    global _reference
    if generation is None:  # no cache to say when it changes: read the tables each time
        return None
    kept = _reference
    if kept is not None and kept[0] == generation:
        return kept[1]
    data = reference_data()
    _reference = (generation, data)
    return data


def render(customer_id: int, generation: bytes | None = None) -> tuple[bytes, float | None]:
    """The answer from the database, and the epoch second it stops being true (when one
    of the customer's discounts starts or ends), if any."""
    now = timezone.now()
    pricing = token_pricing(customer_id, now, _reference_for(generation))
    if pricing is None:
        return NOT_FOUND, None
    deadline = pricing.changes_at.timestamp() if pricing.changes_at is not None else None
    return jsonnum.dumps(pricing.as_response()).encode(), deadline


def answer_cache() -> AnswerCache:
    """This process's answer cache (tests install their own: answercache.use_answer_cache)."""
    return answercache.answer_cache(render)


def pricing_answer(customer_id: int) -> bytes:
    """The GetTokenPricing JSON body for a customer, or NOT_FOUND."""
    return answer_cache().answer(customer_id)


def bump_generation() -> None:
    """Invalidate every cached answer, for a change that sent no signal (QuerySet.update):
    begun now, in the caller's transaction if any, and confirmed once it commits."""
    cache = answer_cache()
    cache.begin_change()
    transaction.on_commit(cache.bump_generation, robust=True)


def start_prefill_local_answers() -> threading.Thread | None:
    """Fill this process's copy of the answers from Redis in the background."""
    return answer_cache().start_prefill()
