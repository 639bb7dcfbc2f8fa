"""Deterministic, lazily computed server lifetimes: the source of simulated usage.

Nothing here is stored per server. A seeded simulator has `slots` server slots; what a slot
holds at any moment is a pure function of (seed, slot, time), so usage for any period of any
size is computed on the fly, page by page, from arithmetic and a 64-bit hash.

Kinds of slot (a slot's kind is fixed by the seed):
- steady: one server created at EPOCH, never deleted (whole months: hourly or capped).
- resizer: one server that alternates between two plans every 9-20 days.
- short: a few servers a month that live minutes, 1 h or 1 h 1 s (rule R1).
- mid: 0-2 servers a month, created and deleted mid-month, an hour to 20 days.
- long: every third month a server living 20-65 days, across month boundaries.

The first SHOWCASE slots are fixed, month-relative timelines so that a small seed shows every
billing rule of DESIGN §5 in every month: 700 h (hourly), 730 h (capped), whole months on a
tpm=0 plan (R3), five minutes on a tph=0 plan (R4), a free plan (R5), 5 min and 60 min 1 s
(R1), a mid-month resize, and an additional IP.

Times are integer Unix seconds; periods are half-open [lo, hi).
"""

from __future__ import annotations

import calendar
import time
import uuid
from functools import lru_cache
from typing import NamedTuple

EPOCH = calendar.timegm((2020, 1, 1, 0, 0, 0))
HOUR = 3600
DAY = 24 * HOUR

STEADY, RESIZER, SHORT, MID, LONG, SHOW_MONTHLY, SHOW_RESIZER = range(7)
# Longest life of a server that is born in one month and may run into later ones.
_MAX_SPAN = {SHORT: HOUR + 1, MID: 21 * DAY, LONG: 65 * DAY, SHOW_MONTHLY: 31 * DAY}

# Plans random slots draw from: the seed's four more often than the special ones.
PLAN_POOL = (1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7)

# slot -> (kind, plan_a, plan_b, has_ip, month-relative incarnations (offset, seconds, plan))
SHOWCASE: dict[int, tuple[int, int, int, bool, tuple[tuple[int, int, int], ...]]] = {
    0: (STEADY, 1, 1, False, ()),  # whole months on 7/5000: capped at 5000 (R2)
    1: (SHOW_MONTHLY, 1, 1, False, ((0, 700 * HOUR, 1),)),  # 700 h -> 4900, hourly (R2)
    2: (SHOW_MONTHLY, 1, 1, False, ((0, 730 * HOUR, 1),)),  # 730 h -> 5110 -> 5000 (R2)
    3: (STEADY, 5, 5, False, ()),  # tpm = 0: hourly, no cap (R3)
    4: (SHOW_MONTHLY, 6, 6, False, ((10 * DAY, 300, 6),)),  # tph = 0: fixed monthly (R4)
    5: (STEADY, 7, 7, False, ()),  # both 0: free, line still there (R5)
    6: (SHOW_MONTHLY, 2, 2, False, ((3 * DAY, 300, 2), (5 * DAY, HOUR + 1, 2))),  # R1
    7: (SHOW_RESIZER, 1, 3, False, ()),  # resized from plan 1 to plan 3 on the 11th
    8: (STEADY, 4, 4, True, ()),  # with an additional IP
}
SHOWCASE_RESIZE_AT = 10 * DAY
# (status, paid backups enabled) of showcase servers other than ("started", False): one
# stopped free server, and backups on three whole-month servers of both demo customers.
# Neither changes usage: /usage has no backup rows (see `Timeline.traits`).
SHOWCASE_TRAITS = {
    0: ("started", True),
    3: ("started", True),
    5: ("stopped", False),
    8: ("started", True),
}

_M64 = (1 << 64) - 1


def _mix(x: int) -> int:
    # splitmix64's finaliser: fast, well spread, identical on every platform and run.
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def hash3(seed: int, a: int, b: int = 0) -> int:
    return _mix(_mix(_mix(seed & _M64) ^ (a & _M64)) ^ (b & _M64))


@lru_cache(maxsize=4096)
def month_start(index: int) -> int:
    """Start of calendar month `index` (0 = January 2020), UTC."""
    year, month0 = divmod(index, 12)
    return calendar.timegm((2020 + year, month0 + 1, 1, 0, 0, 0))


def month_index(ts: int) -> int:
    t = time.gmtime(ts)
    return (t.tm_year - 2020) * 12 + t.tm_mon - 1


class Segment(NamedTuple):
    """A stretch of one server's life on one plan."""

    server_id: int
    slot: int  # -1 for servers added by hand through the control API
    user_id: int
    created: int
    start: int
    end: int | None  # None: still running, never deleted
    plan_id: int
    has_ip: bool


class Timeline:
    def __init__(self, seed: int, slots: int, users: int) -> None:
        self.seed = seed
        # Slot s belongs to seeded user s % users + 1; without users there are no slots.
        self.slots = slots if users > 0 else 0
        self.users = users
        # Profiles are a few hashes each; cached because every page asks for them again.
        self._profiles: dict[int, tuple[int, int, int, bool, int, int]] = {}

    # --- identity ---------------------------------------------------------------------

    def server_uuid(self, server_id: int) -> str:
        high = hash3(self.seed, server_id, 0xA1)
        low = hash3(self.seed, server_id, 0xB2)
        return str(uuid.UUID(int=(high << 64) | low, version=4))

    @staticmethod
    def server_name(server_id: int) -> str:
        return f"srv{server_id}.example.test"

    def traits(self, server_id: int, slot: int) -> tuple[str, bool]:
        """(status, paid backups enabled) of a server: fixed for showcase slots, drawn from
        the seed for the others (mostly started, a few of SolusIO's other statuses; a
        quarter with backups). A separate hash, so kinds, plans and usage stay as they were."""
        if slot in SHOWCASE:
            return SHOWCASE_TRAITS.get(slot, ("started", False))
        h = hash3(self.seed, server_id, 0x57A7)
        roll = h % 100
        status = (
            "started"
            if roll < 80
            else "stopped"
            if roll < 92
            else "paused"
            if roll < 95
            else "processing"
            if roll < 97
            else "unavailable"
            if roll < 99
            else "not exists"
        )
        return status, (h >> 8) % 4 == 0

    def _churn_id(self, slot: int, month: int, q: int) -> int:
        return self.slots + 1 + ((month * self.slots + slot) * 4 + q)

    # --- profiles -------------------------------------------------------------------------

    def profile(self, slot: int) -> tuple[int, int, int, bool, int, int]:
        """(kind, plan_a, plan_b, has_ip, resize_length, resize_phase) of a slot."""
        cached = self._profiles.get(slot)
        if cached is not None:
            return cached
        if slot in SHOWCASE:
            kind, plan_a, plan_b, has_ip, _ = SHOWCASE[slot]
            result = (kind, plan_a, plan_b, has_ip, 0, 0)
        else:
            r = hash3(self.seed, slot)
            pick = r % 100
            kind = (
                STEADY
                if pick < 35
                else RESIZER
                if pick < 50
                else SHORT
                if pick < 65
                else MID
                if pick < 90
                else LONG
            )
            plan_a = PLAN_POOL[(r >> 8) % len(PLAN_POOL)]
            plan_b = PLAN_POOL[(r >> 16) % len(PLAN_POOL)]
            if plan_b == plan_a:
                plan_b = plan_a % 4 + 1  # a resize always changes the plan
            has_ip = (r >> 24) % 10 == 0
            length = (9 + (r >> 32) % 12) * DAY
            phase = (r >> 40) % length
            result = (kind, plan_a, plan_b, has_ip, length, phase)
        self._profiles[slot] = result
        return result

    # --- segments -----------------------------------------------------------------------------

    def segments(self, slot: int, lo: int, hi: int) -> list[Segment]:
        """Every segment of `slot` that overlaps [lo, hi), in time order."""
        kind, plan_a, plan_b, has_ip, length, phase = self.profile(slot)
        if hi <= EPOCH:
            return []
        sid = slot + 1
        uid = slot % self.users + 1
        if kind == STEADY:
            return [Segment(sid, slot, uid, EPOCH, EPOCH, None, plan_a, has_ip)]
        if kind == RESIZER:
            first = max(0, (max(lo, EPOCH) - EPOCH + phase) // length)
            last = (hi - 1 - EPOCH + phase) // length
            return [
                Segment(
                    sid,
                    slot,
                    uid,
                    EPOCH,
                    max(EPOCH, EPOCH + j * length - phase),
                    EPOCH + (j + 1) * length - phase,
                    plan_a if j % 2 == 0 else plan_b,
                    has_ip,
                )
                for j in range(first, last + 1)
            ]
        if kind == SHOW_RESIZER:
            out = []
            for m in range(max(0, month_index(max(lo, EPOCH))), month_index(hi - 1) + 1):
                start, end = month_start(m), month_start(m + 1)
                cut = start + SHOWCASE_RESIZE_AT
                for a, b, plan in ((start, cut, plan_a), (cut, end, plan_b)):
                    if a < hi and b > lo:
                        out.append(Segment(sid, slot, uid, EPOCH, a, b, plan, has_ip))
            return out
        out = []
        first_month = max(0, month_index(max(EPOCH, lo - _MAX_SPAN[kind])))
        for m in range(first_month, month_index(hi - 1) + 1):
            for q, (start, seconds, plan, ip) in enumerate(self._births(slot, kind, m)):
                end = start + seconds
                if start < hi and end > lo:
                    out.append(
                        Segment(self._churn_id(slot, m, q), slot, uid, start, start, end, plan, ip)
                    )
        out.sort(key=lambda s: s.start)
        return out

    def _births(self, slot: int, kind: int, month: int) -> list[tuple[int, int, int, bool]]:
        """Servers a churn slot creates in calendar month `month`: (start, seconds, plan, ip)."""
        base = month_start(month)
        span = month_start(month + 1) - base
        if kind == SHOW_MONTHLY:
            return [(base + off, secs, plan, False) for off, secs, plan in SHOWCASE[slot][4]]
        hm = hash3(self.seed, slot, month + 1)
        if kind == SHORT:
            count = 1 + hm % 3
        elif kind == MID:
            count = hm % 3
        else:
            count = 1 if (month + slot) % 3 == 0 else 0
        births = []
        for q in range(count):
            hq = hash3(self.seed, slot, (month + 1) * 8 + q)
            plan = PLAN_POOL[(hq >> 32) % len(PLAN_POOL)]
            if kind == SHORT:
                # 5 minutes, exactly 1 h, 1 h 1 s (two started hours), or 1-59 minutes.
                seconds = (300, HOUR, HOUR + 1, 60 + (hq >> 20) % 3540)[(hq >> 12) % 4]
                births.append((base + hq % (span - HOUR - 1), seconds, plan, False))
            elif kind == MID:
                seconds = HOUR + (hq >> 20) % (20 * DAY)
                births.append((base + hq % span, seconds, plan, (hq >> 40) % 8 == 0))
            else:
                seconds = 20 * DAY + (hq >> 20) % (45 * DAY)
                births.append((base + hq % span, seconds, plan, (hq >> 40) % 4 == 0))
        return births

    def count_rows(self, slot: int, lo: int, hi: int, *, with_ips: bool) -> int:
        """How many rows `segments(slot, lo, hi)` makes; cheap for the common kinds."""
        kind, _, _, has_ip, length, phase = self.profile(slot)
        per = 2 if (has_ip and with_ips) else 1
        if hi <= EPOCH:
            return 0
        if kind == STEADY:
            return per
        if kind == RESIZER:
            first = max(0, (max(lo, EPOCH) - EPOCH + phase) // length)
            return per * ((hi - 1 - EPOCH + phase) // length - first + 1)
        segments = self.segments(slot, lo, hi)
        if not with_ips:
            return len(segments)
        return sum(2 if s.has_ip else 1 for s in segments)
