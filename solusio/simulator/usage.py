"""Usage rows for a period, served page by page straight from the timeline.

A page is found without generating the rows before it: a per-period index holds, for every
slot, how many rows come before it (one small integer array, cached for a few periods), so
page N costs one binary search plus the ~per_page rows it returns.

Rows per server segment: `server`, then `additional_ip` when it has one, then a `backup`
row for each stretch of it with paid backups on (the plan's `backup_price`, rule R7): one
for the whole segment unless backups were switched during it. The /servers list walks the
same machinery with `with_ips=False`: one row per segment, no IP or backup rows.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from solusio.simulator.timeline import RESIZER, SHOW_RESIZER, STEADY, Segment, Timeline, hash3

HOUR = 3600
_INDEX_CACHE = 8


def charge(hours: int, tph: int, tpm: int) -> int:
    """SolusIO's own charge for one item (DESIGN §5, R2-R5)."""
    if tph > 0 and tpm > 0:
        return min(hours * tph, tpm)
    if tpm == 0:
        return hours * tph
    return tpm if hours > 0 else 0


SERVER, ADDITIONAL_IP, BACKUP = "server", "additional_ip", "backup"
# Kinds whose every segment in a slot is the same server (one backups trait for the slot).
_ONE_SERVER = frozenset({STEADY, RESIZER, SHOW_RESIZER})


def backup_charge(hours: int, tph: int, tpm: int, backup_price: Any) -> int:
    """SolusIO's charge for paid backups (R7): a percentage of the runtime charge."""
    runtime = Decimal(charge(hours, tph, tpm))
    return int((runtime * Decimal(str(backup_price)) / 100).quantize(Decimal(1), ROUND_HALF_UP))


Spans = Sequence[tuple[int, int | None]]  # (start, end; None: still running)


class UsageFeed:
    def __init__(
        self, timeline: Timeline, backups: Callable[[Segment], Spans] | None = None
    ) -> None:
        """`backups`: the stretches of a segment with paid backups on (the state's server
        traits and switches); without it, no backup rows."""
        self.timeline = timeline
        self._backups: Callable[[Segment], Spans] = backups or (lambda seg: ())
        self._lock = threading.Lock()
        self._indexes: OrderedDict[tuple[int, int, bool], array[int]] = OrderedDict()

    def forget(self) -> None:
        """Drop the page indexes: rows were added or removed (backups switched)."""
        with self._lock:
            self._indexes.clear()

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
        count = self._count_rows
        for slot in range(self.timeline.slots):
            total += count(slot, lo, hi, with_ips)
            counts.append(total)
        with self._lock:
            self._indexes[key] = counts
            while len(self._indexes) > _INDEX_CACHE:
                self._indexes.popitem(last=False)
        return counts

    def _count_rows(self, slot: int, lo: int, hi: int, with_ips: bool) -> int:
        """`timeline.count_rows`, plus a backup row per segment of a server with backups."""
        tl = self.timeline
        if not with_ips:
            return tl.count_rows(slot, lo, hi, with_ips=False)
        if tl.profile(slot)[0] in _ONE_SERVER:  # cheap: no segments built
            rows = tl.count_rows(slot, lo, hi, with_ips=True)
            whole = self._backups(Segment(slot + 1, slot, 0, 0, 0, None, 0, False))
            if not rows or not whole:
                return rows
            if list(whole) == [(0, None)]:  # never switched: on for every segment
                return rows + tl.count_rows(slot, lo, hi, with_ips=False)
        backups = self._backups
        return sum(1 + seg.has_ip + len(backups(seg)) for seg in tl.segments(slot, lo, hi))

    def rows(
        self,
        lo: int,
        hi: int,
        offset: int,
        limit: int,
        extra: list[Segment],
        *,
        with_ips: bool = True,
    ) -> tuple[list[tuple[Segment, str]], int]:
        """(segment, item kind) pairs from `offset` on, at most `limit`, and the total count.

        Slot rows come first in slot order, then the hand-made servers of `extra`.
        """
        counts = self.index(lo, hi, with_ips=with_ips)
        expand = self._expand
        extra_rows = list(expand(_overlapping(extra, lo, hi), with_ips))
        slot_total = counts[-1]
        total = slot_total + len(extra_rows)
        out: list[tuple[Segment, str]] = []
        if offset < slot_total:
            slot = bisect_right(counts, offset) - 1
            skip = offset - counts[slot]
            segments = self.timeline.segments
            while len(out) < limit and slot < self.timeline.slots:
                for row in expand(segments(slot, lo, hi), with_ips):
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

    def _expand(self, segments: Iterable[Segment], with_ips: bool) -> Iterable[tuple[Segment, str]]:
        for seg in segments:
            yield seg, SERVER
            if with_ips:
                if seg.has_ip:
                    yield seg, ADDITIONAL_IP
                for start, end in self._backups(seg):
                    yield seg._replace(start=start, end=end), BACKUP

    def row_json(
        self,
        seg: Segment,
        kind: str,
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
        if kind == ADDITIONAL_IP:
            tph, tpm = plan["ip_tokens_per_hour"], plan["ip_tokens_per_month"]
        else:
            tph, tpm = plan["tokens_per_hour"], plan["tokens_per_month"]
        tokens: int | None
        if kind == BACKUP:
            tokens = backup_charge(hours, tph, tpm, plan["backup_price"])
        else:
            tokens = charge(hours, tph, tpm)
        # Server and IP rows roll as they always did (seeded figures stay put).
        salt = {SERVER: 0, ADDITIONAL_IP: 1}.get(kind, 0x8AC)
        roll = hash3(self.timeline.seed, seg.server_id, start * 2 + salt)
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
                "backup_price": plan["backup_price"],
            },
            "item": kind,
            "hours": hours,
            "started_at": iso(start),
            "ended_at": None if still_running else iso(end),
            "tokens": tokens,
        }


def _overlapping(segments: Iterable[Segment], lo: int, hi: int) -> list[Segment]:
    return [s for s in segments if s.start < hi and (s.end is None or s.end > lo)]
