"""Usage rows for a period, served page by page straight from the timeline.

A page is found without generating the rows before it: a per-period index holds, for every
slot, how many rows come before it (one small integer array, cached for a few periods), so
page N costs one binary search plus the ~per_page rows it returns.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from solusio.simulator.timeline import Segment, Timeline, hash3

HOUR = 3600
_INDEX_CACHE = 8


def charge(hours: int, tph: int, tpm: int) -> int:
    """SolusIO's own charge for one item (DESIGN §5, R2-R5)."""
    if tph > 0 and tpm > 0:
        return min(hours * tph, tpm)
    if tpm == 0:
        return hours * tph
    return tpm if hours > 0 else 0


class UsageFeed:
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self._lock = threading.Lock()
        self._indexes: OrderedDict[tuple[int, int, bool], array[int]] = OrderedDict()

    def index(self, lo: int, hi: int, *, with_ips: bool) -> array[int]:
        key = (lo, hi, with_ips)
        with self._lock:
            found = self._indexes.get(key)
            if found is not None:
                self._indexes.move_to_end(key)
                return found
        # Built outside the lock: two threads may both build it, which is only wasted work.
        counts = array("q", [0])
        total = 0
        count = self.timeline.count_rows
        for slot in range(self.timeline.slots):
            total += count(slot, lo, hi, with_ips=with_ips)
            counts.append(total)
        with self._lock:
            self._indexes[key] = counts
            while len(self._indexes) > _INDEX_CACHE:
                self._indexes.popitem(last=False)
        return counts

    def rows(
        self,
        lo: int,
        hi: int,
        offset: int,
        limit: int,
        extra: list[Segment],
        *,
        with_ips: bool = True,
    ) -> tuple[list[tuple[Segment, bool]], int]:
        """(segment, is_ip) pairs from `offset` on, at most `limit`, and the total count.

        Slot rows come first in slot order, then the hand-made servers of `extra`.
        """
        counts = self.index(lo, hi, with_ips=with_ips)
        extra_rows = list(_expand(_overlapping(extra, lo, hi), with_ips))
        slot_total = counts[-1]
        total = slot_total + len(extra_rows)
        out: list[tuple[Segment, bool]] = []
        if offset < slot_total:
            slot = bisect_right(counts, offset) - 1
            skip = offset - counts[slot]
            segments = self.timeline.segments
            while len(out) < limit and slot < self.timeline.slots:
                for row in _expand(segments(slot, lo, hi), with_ips):
                    if skip:
                        skip -= 1
                        continue
                    out.append(row)
                    if len(out) == limit:
                        break
                slot += 1
        if len(out) < limit:
            start = max(0, offset - slot_total)
            out.extend(extra_rows[start : start + limit - len(out)])
        return out, total

    def row_json(
        self,
        seg: Segment,
        is_ip: bool,
        lo: int,
        hi: int,
        period_open: bool,
        plans: Mapping[int, Mapping[str, Any]],
        billing_ids: Mapping[int, int | None],
        mismatch_rate: float,
        iso: Any,
    ) -> dict[str, Any]:
        start = max(seg.start, lo)
        end = hi if seg.end is None else min(seg.end, hi)
        hours = -(-(end - start) // HOUR)  # every started hour counts (R1)
        still_running = period_open and (seg.end is None or seg.end > hi)
        plan = plans[seg.plan_id]
        if is_ip:
            tph, tpm = plan["ip_tokens_per_hour"], plan["ip_tokens_per_month"]
        else:
            tph, tpm = plan["tokens_per_hour"], plan["tokens_per_month"]
        tokens: int | None = charge(hours, tph, tpm)
        roll = hash3(self.timeline.seed, seg.server_id, start * 2 + is_ip)
        if roll % 5 == 0:
            tokens = None  # SolusIO does not always say what it charged
        elif (roll >> 8) % 10_000 < mismatch_rate * 10_000:
            tokens = (tokens or 0) + 1
        tl = self.timeline
        return {
            "user": {
                "id": seg.user_id,
                # A deleted seeded user keeps the link it was seeded with.
                "billing_user_id": billing_ids.get(seg.user_id, seg.user_id),
            },
            "server": {
                "id": seg.server_id,
                "uuid": tl.server_uuid(seg.server_id),
                "name": tl.server_name(seg.server_id),
            },
            "plan": {
                "id": plan["id"],
                "name": plan["name"],
                "tokens_per_hour": plan["tokens_per_hour"],
                "tokens_per_month": plan["tokens_per_month"],
                "ip_tokens_per_hour": plan["ip_tokens_per_hour"],
                "ip_tokens_per_month": plan["ip_tokens_per_month"],
            },
            "item": "additional_ip" if is_ip else "server",
            "hours": hours,
            "started_at": iso(start),
            "ended_at": None if still_running else iso(end),
            "tokens": tokens,
        }


def _overlapping(segments: Iterable[Segment], lo: int, hi: int) -> list[Segment]:
    return [s for s in segments if s.start < hi and (s.end is None or s.end > lo)]


def _expand(segments: Iterable[Segment], with_ips: bool) -> Iterable[tuple[Segment, bool]]:
    for seg in segments:
        yield seg, False
        if with_ips and seg.has_ip:
            yield seg, True
