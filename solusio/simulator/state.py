"""The simulator's in-memory SolusIO: users, plans, limit groups, settings, servers.

All mutation happens under one lock, so the threaded server stays consistent. Seeding is
deterministic: the same `SeedConfig` always gives the same users, servers and usage.
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from solusio.simulator.timeline import EPOCH, Segment, Timeline, hash3
from solusio.simulator.usage import UsageFeed

STATUSES = ("active", "locked", "suspended")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def iso(ts: float) -> str:
    # Laravel's JSON date format: microseconds and a Z.
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(ts))


def parse_instant(value: Any, name: str, errors: dict[str, list[str]]) -> int | None:
    """An ISO 8601 date or date-time as Unix seconds; naive values are UTC."""
    if not isinstance(value, str) or not value:
        errors[name] = [f"The {name} field is required."]
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors[name] = [f"The {name} is not a valid date."]
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


@dataclass(frozen=True)
class SeedConfig:
    seed: int = 1
    users: int = 10
    # Server slots; None means two per user.
    servers: int | None = None
    # The simulator's "now" as Unix seconds; None follows the real clock.
    now: int | None = None
    # Share of usage rows whose reported `tokens` is off by one, to exercise the bridge's
    # "SolusIO disagrees" flag. 0 by default: SolusIO's own sums agree with DESIGN §5.
    tokens_mismatch_rate: float = 0.0
    # (billing_user_id, e-mail) of the first seeded users, instead of customerN@example.test
    # with billing id N: the demo seeds its customers this way, so they own the servers
    # and their usage, and the bridge's sync links them by e-mail. Counts towards `users`.
    named_users: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        named = tuple((int(bid), str(email)) for bid, email in self.named_users)
        object.__setattr__(self, "named_users", named)
        if len(named) > self.users:
            object.__setattr__(self, "users", len(named))
        ids = [bid for bid, _ in named]
        emails = [email.lower() for _, email in named]
        if len(set(ids)) != len(ids) or len(set(emails)) != len(emails):
            raise ValueError("named users need distinct billing ids and e-mails")
        if any(bid < 1 for bid in ids) or any(not _EMAIL.match(e) for e in emails):
            raise ValueError("named users need billing ids >= 1 and valid e-mails")

    @property
    def slots(self) -> int:
        return self.servers if self.servers is not None else 2 * self.users

    def seeded_user(self, uid: int) -> tuple[int, str]:
        """(billing_user_id, e-mail) of seeded user `uid` (1-based). The generated users
        after the named ones take the billing ids the named ones left free, in order (with
        named ids 1..n, user uid keeps billing id uid)."""
        named = len(self.named_users)
        if uid <= named:
            return self.named_users[uid - 1]
        billing_id = uid - named
        for taken in sorted(bid for bid, _ in self.named_users):
            if taken <= billing_id:
                billing_id += 1
        return billing_id, f"customer{billing_id}@example.test"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Invalid(Exception):
    """A 422 in SolusIO's format."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("The given data was invalid.")


class Missing(Exception):
    """A 404."""


# The seed's four plans (Step 2) plus the three special cases of DESIGN §5.
SEED_PLANS: tuple[tuple[int, str, int, int, int, int, int, int], ...] = (
    # id, name, vcpu, ram MiB, tph, tpm, ip tph, ip tpm
    (1, "1 Core, 1 GB RAM", 1, 1024, 7, 5000, 1, 500),
    (2, "1 Core, 2 GB RAM", 1, 2048, 14, 10000, 1, 500),
    (3, "2 Cores, 2 GB RAM", 2, 2048, 21, 15000, 1, 500),
    (4, "2 Cores, 4 GB RAM", 2, 4096, 28, 20000, 1, 500),
    (5, "Hourly only (no monthly cap)", 1, 1024, 10, 0, 1, 0),
    (6, "Fixed monthly", 1, 1024, 0, 3000, 0, 500),
    (7, "Free trial", 1, 512, 0, 0, 0, 0),
)
SEED_LIMIT_GROUPS = (
    (1, "Default", (5, True), (3, True), (2, True)),
    (2, "Unlimited", (0, False), (0, False), (0, False)),
    (3, "Trial", (1, True), (1, True), (0, True)),
)
ROLES = {1: "admin", 2: "client"}
LANGUAGES = {1: ("English", "en_US"), 2: ("Deutsch", "de_DE")}


def fresh_settings() -> dict[str, Any]:
    """Settings as a fresh SolusIO has them: registration on, no billing integration."""
    return {
        "hostname": "solusio.example.test",
        "send_statistics": False,
        "registration": {"role": "client"},
        "features": {
            "hide_plan_name": False,
            "hide_user_data": False,
            "hide_plan_section": False,
            "allow_registration": True,
        },
        "billing_integration": {"type": "none", "drivers": {"whmcs": {"url": "", "token": ""}}},
    }


@dataclass
class SimState:
    config: SeedConfig = field(default_factory=SeedConfig)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.reseed(self.config)

    # --- seeding -------------------------------------------------------------------------

    def reseed(self, config: SeedConfig) -> None:
        with self.lock:
            self.config = config
            self.timeline = Timeline(config.seed, config.slots, config.users)
            self.usage = UsageFeed(self.timeline)
            self.users: dict[int, dict[str, Any]] = {}
            self.emails: dict[str, int] = {}
            self.tokens: dict[str, int] = {}
            self.explicit: list[Segment] = []
            self.next_explicit_id = 10**12
            self.next_token_id = 1
            self.plans = {
                pid: {
                    "id": pid,
                    "name": name,
                    "params": {"vcpu": vcpu, "ram": ram * 1024 * 1024, "disk": 20},
                    "tokens_per_hour": tph,
                    "tokens_per_month": tpm,
                    "ip_tokens_per_hour": itph,
                    "ip_tokens_per_month": itpm,
                    "is_default": pid == 1,
                    "is_visible": True,
                    "position": pid,
                }
                for pid, name, vcpu, ram, tph, tpm, itph, itpm in SEED_PLANS
            }
            self.limit_groups = {
                gid: {
                    "id": gid,
                    "name": name,
                    "vms": {"limit": vms[0], "is_enabled": vms[1]},
                    "running_vms": {"limit": running[0], "is_enabled": running[1]},
                    "additional_ips": {"limit": ips[0], "is_enabled": ips[1]},
                }
                for gid, name, vms, running, ips in SEED_LIMIT_GROUPS
            }
            self.settings = fresh_settings()
            created = iso(EPOCH)
            for uid in range(1, config.users + 1):
                # Mostly active; a few locked or suspended, as a real customer base has.
                roll = hash3(config.seed, uid, 0x5EED) % 20
                status = "suspended" if roll == 0 else "locked" if roll == 1 else "active"
                billing_id, email = config.seeded_user(uid)
                self.users[uid] = {
                    "id": uid,
                    "email": email,
                    "status": status,
                    # Seeded users are linked to billing users (by default with their id).
                    "billing_user_id": billing_id,
                    "limit_group_id": 1,
                    "language_id": 1,
                    "roles": [2],
                    "created_at": created,
                }
                self.emails[email.lower()] = uid
            self.next_user_id = config.users + 1

    def now(self) -> int:
        return self.config.now if self.config.now is not None else int(time.time())

    # --- users -----------------------------------------------------------------------------

    def user_json(self, user: dict[str, Any]) -> dict[str, Any]:
        group = self.limit_groups.get(user["limit_group_id"] or 0)
        language = LANGUAGES.get(user["language_id"] or 0)
        return {
            "id": user["id"],
            "email": user["email"],
            "status": user["status"],
            "billing_user_id": user["billing_user_id"],
            "limit_group": {"id": group["id"], "name": group["name"]} if group else None,
            "language": (
                {"id": user["language_id"], "name": language[0], "locale": language[1]}
                if language
                else None
            ),
            "roles": [{"id": r, "name": ROLES[r]} for r in user["roles"]],
            "created_at": user["created_at"],
        }

    def get_user(self, uid: int) -> dict[str, Any]:
        with self.lock:
            user = self.users.get(uid)
            if user is None:
                raise Missing
            return self.user_json(user)

    def list_users(self, search: str | None, start: int, count: int) -> tuple[list[Any], int]:
        with self.lock:
            if search:
                needle = search.lower()
                hits = [u for u in self.users.values() if needle in u["email"].lower()]
                return [self.user_json(u) for u in hits[start : start + count]], len(hits)
            values = list(self.users.values())
            return [self.user_json(u) for u in values[start : start + count]], len(values)

    def create_user(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            clean = self._validate_user(body, current=None)
            uid = self.next_user_id
            self.next_user_id += 1
            user = {
                "id": uid,
                "email": clean["email"],
                "status": clean.get("status", "active"),
                "billing_user_id": clean.get("billing_user_id"),
                "limit_group_id": clean.get("limit_group_id", 1),
                "language_id": clean.get("language_id", 1),
                "roles": clean.get("roles", [2]),
                "created_at": iso(time.time()),
            }
            self.users[uid] = user
            self.emails[user["email"].lower()] = uid
            return self.user_json(user)

    def update_user(self, uid: int, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            user = self.users.get(uid)
            if user is None:
                raise Missing
            clean = self._validate_user(body, current=user)
            if "email" in clean:
                del self.emails[user["email"].lower()]
                self.emails[clean["email"].lower()] = uid
            clean.pop("password", None)
            user.update(clean)
            return self.user_json(user)

    def delete_user(self, uid: int) -> None:
        with self.lock:
            user = self.users.pop(uid, None)
            if user is None:
                raise Missing
            del self.emails[user["email"].lower()]

    def create_token(self, uid: int, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if uid not in self.users:
                raise Missing
            one_time = body.get("is_one_time", False)
            if not isinstance(one_time, bool):
                raise Invalid({"is_one_time": ["The is one time field must be true or false."]})
            token = secrets.token_urlsafe(32)
            self.tokens[token] = uid
            tid = self.next_token_id
            self.next_token_id += 1
            return {
                "id": tid,
                "access_token": token,
                "is_one_time": one_time,
                "created_at": iso(time.time()),
            }

    def _validate_user(self, body: dict[str, Any], current: dict[str, Any] | None) -> dict:
        errors: dict[str, list[str]] = {}
        clean: dict[str, Any] = {}
        creating = current is None
        if "email" in body or creating:
            email = body.get("email")
            if email in (None, ""):
                errors["email"] = ["The email field is required."]
            elif not isinstance(email, str) or not _EMAIL.match(email) or len(email) > 255:
                errors["email"] = ["The email must be a valid email address."]
            else:
                owner = self.emails.get(email.lower())
                if owner is not None and (current is None or owner != current["id"]):
                    errors["email"] = ["The email has already been taken."]
                clean["email"] = email
        if "password" in body or creating:
            password = body.get("password")
            if password in (None, ""):
                errors["password"] = ["The password field is required."]
            elif not isinstance(password, str) or len(password) < 8:
                errors["password"] = ["The password must be at least 8 characters."]
            else:
                clean["password"] = password
        if "status" in body:
            if body["status"] not in STATUSES:
                errors["status"] = ["The selected status is invalid."]
            else:
                clean["status"] = body["status"]
        if "billing_user_id" in body:
            value = body["billing_user_id"]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                errors["billing_user_id"] = ["The billing user id must be an integer."]
            else:
                clean["billing_user_id"] = value
        if "limit_group_id" in body:
            value = body["limit_group_id"]
            if value is not None and value not in self.limit_groups:
                errors["limit_group_id"] = ["The selected limit group id is invalid."]
            else:
                clean["limit_group_id"] = value
        if "language_id" in body:
            if body["language_id"] not in LANGUAGES:
                errors["language_id"] = ["The selected language id is invalid."]
            else:
                clean["language_id"] = body["language_id"]
        if "roles" in body:
            roles = body["roles"]
            if not isinstance(roles, list) or any(r not in ROLES for r in roles):
                errors["roles"] = ["The selected roles is invalid."]
            else:
                clean["roles"] = list(roles)
        if errors:
            raise Invalid(errors)
        return clean

    # --- plans, limit groups, settings ---------------------------------------------------

    def list_plans(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(p) for p in self.plans.values()]

    def update_plan(self, pid: int, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            plan = self.plans.get(pid)
            if plan is None:
                raise Missing
            errors: dict[str, list[str]] = {}
            clean: dict[str, Any] = {}
            for key in (
                "tokens_per_hour",
                "tokens_per_month",
                "ip_tokens_per_hour",
                "ip_tokens_per_month",
            ):
                if key not in body:
                    continue
                value = body[key]
                label = key.replace("_", " ")
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if isinstance(value, bool) or not isinstance(value, int):
                    errors[key] = [f"The {label} must be an integer."]
                elif value < 0:
                    errors[key] = [f"The {label} must be at least 0."]
                else:
                    clean[key] = value
            if "name" in body:
                if not isinstance(body["name"], str) or not body["name"].strip():
                    errors["name"] = ["The name field is required."]
                else:
                    clean["name"] = body["name"]
            if errors:
                raise Invalid(errors)
            plan.update(clean)
            return copy.deepcopy(plan)

    def list_limit_groups(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(g) for g in self.limit_groups.values()]

    def get_settings(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.settings)

    def patch_settings(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            errors: dict[str, list[str]] = {}
            merged = copy.deepcopy(self.settings)
            _merge(merged, body, "", errors)
            if errors:
                raise Invalid(errors)
            self.settings = merged
            return copy.deepcopy(merged)

    # --- servers ------------------------------------------------------------------------------

    def add_server(self, body: dict[str, Any]) -> dict[str, Any]:
        """A hand-made server timeline (control API), for exact billing tests."""
        with self.lock:
            errors: dict[str, list[str]] = {}
            uid: Any = body.get("user_id")
            pid: Any = body.get("plan_id")
            if uid not in self.users:
                errors["user_id"] = ["The selected user id is invalid."]
            if pid not in self.plans:
                errors["plan_id"] = ["The selected plan id is invalid."]
            created = parse_instant(body.get("created_at"), "created_at", errors)
            deleted = None
            if body.get("deleted_at") is not None:
                deleted = parse_instant(body["deleted_at"], "deleted_at", errors)
            cuts: list[tuple[int, int]] = []
            for i, resize in enumerate(body.get("resizes") or []):
                at = parse_instant(resize.get("at"), f"resizes.{i}.at", errors)
                if resize.get("plan_id") not in self.plans:
                    errors[f"resizes.{i}.plan_id"] = ["The selected plan id is invalid."]
                cuts.append((at or 0, resize.get("plan_id")))
            if created is not None and deleted is not None and deleted <= created:
                errors["deleted_at"] = ["The deleted at must be a date after created at."]
            if errors:
                raise Invalid(errors)
            assert created is not None
            sid = self.next_explicit_id
            self.next_explicit_id += 1
            has_ip = bool(body.get("additional_ip", False))
            starts: list[tuple[int, int]] = [(created, int(pid)), *sorted(cuts)]
            for i, (start, plan_id) in enumerate(starts):
                end = starts[i + 1][0] if i + 1 < len(starts) else deleted
                self.explicit.append(
                    Segment(sid, -1, int(uid), created, start, end, plan_id, has_ip)
                )
            return {"id": sid, "uuid": self.timeline.server_uuid(sid)}

    def server_json(self, seg: Segment) -> dict[str, Any]:
        plan = self.plans[seg.plan_id]
        user = self.users.get(seg.user_id)
        return {
            "id": seg.server_id,
            "uuid": self.timeline.server_uuid(seg.server_id),
            "name": self.timeline.server_name(seg.server_id),
            "status": "running",
            "plan": {"id": plan["id"], "name": plan["name"]},
            "user": {"id": seg.user_id, "email": user["email"] if user else None},
            "created_at": iso(seg.created),
        }

    def servers_of(self, uid: int) -> list[dict[str, Any]]:
        """Servers the user has now (alive at `now`)."""
        now = self.now()
        with self.lock:
            if uid not in self.users:
                return []
            tl = self.timeline
            segments: list[Segment] = []
            if 1 <= uid <= tl.users:
                for slot in range(uid - 1, tl.slots, tl.users):
                    segments.extend(tl.segments(slot, now, now + 1))
            segments.extend(
                s
                for s in self.explicit
                if s.user_id == uid and s.start <= now and (s.end is None or s.end > now)
            )
            return [self.server_json(s) for s in segments]

    def billing_ids(self, user_ids: Iterable[int]) -> dict[int, int | None]:
        """Current billing links of some users (those on one usage page); deleted ones left out."""
        with self.lock:
            users = self.users
            return {uid: users[uid]["billing_user_id"] for uid in set(user_ids) if uid in users}


def _merge(target: dict[str, Any], patch: Any, prefix: str, errors: dict[str, list[str]]) -> None:
    """PATCH semantics: known keys only, each keeping its JSON type; unknown keys ignored."""
    if not isinstance(patch, dict):
        errors[prefix.rstrip(".") or "settings"] = ["The settings must be an object."]
        return
    for key, value in patch.items():
        if key not in target:
            continue
        name = f"{prefix}{key}"
        current = target[key]
        if isinstance(current, dict):
            _merge(current, value, f"{name}.", errors)
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                errors[name] = [f"The {name} field must be true or false."]
            else:
                target[key] = value
        elif isinstance(current, str):
            if value is not None and not isinstance(value, str):
                errors[name] = [f"The {name} must be a string."]
            else:
                target[key] = value or ""
        else:
            target[key] = value
