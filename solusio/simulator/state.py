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
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from solusio import schemas
from solusio.schemas import NOTIFICATIONS
from solusio.simulator.timeline import DAY, EPOCH, Segment, Timeline, hash3
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
ROLES = {1: ("admin", False), 2: ("client", True)}  # id: (name, is_default)
LANGUAGES = {1: ("English", "en_US"), 2: ("Deutsch", "de_DE")}
# backup_price is a percentage of the server's price (SolusVM 2 "paid backups").
SEED_BACKUP_PRICES = {1: 10, 2: 10, 3: 20, 4: 20, 5: 15, 6: 10, 7: 0}
# The API token's owner (GET /account, POST /auth/login). Not one of the listed users, so
# that /users holds only customers, as the seeds and the tests count them.
ADMIN_ID = 1_000_000_000
ADMIN_EMAIL = "admin@solusio.example.test"
LOCATION = {"id": 1, "name": "Frankfurt"}
OS_IMAGE_VERSIONS = {1: "Ubuntu 24.04", 2: "Debian 12", 3: "AlmaLinux 9"}
APPLICATIONS = {1: "WordPress", 2: "Docker"}
# A nominal price per token, only for the display strings of a plan's `price` (SolusIO
# renders them from the billing side's pricing, which the simulator does not have).
DISPLAY_TOKEN_PRICE = Decimal("0.01")
SERVER_STATUSES = ("started", "stopped", "processing", "paused", "unavailable", "not exists")


def fresh_settings(limit_group: dict[str, Any] | None = None) -> dict[str, Any]:
    """Settings as a fresh SolusIO has them: registration on, no billing integration."""
    template = {
        "enabled": True,
        "subject_templates": {"en_US": ""},
        "body_templated": {"en_US": ""},
    }
    return {
        "hostname": "solusio.example.test",
        "mail": {
            "host": "",
            "username": "",
            "password": "",
            "from_email": "noreply@solusio.example.test",
            "from_name": "SolusIO",
            "encryption": False,
        },
        "send_statistics": False,
        "limit_group": copy.deepcopy(limit_group),
        "registration": {"role": "client"},
        "theme": {
            "primary_color": "#28aade",
            "secondary_color": "#737373",
            "brand_name": "SolusIO",
            "logo": "",
            "favicon": "",
            "terms_and_conditions_url": "",
        },
        "network_rules": {
            "arp": True,
            "dhcp": True,
            "cloud_init": True,
            "smtp": True,
            "icmp": True,
            "icmp_reply": True,
        },
        "notifications": {name: copy.deepcopy(template) for name in NOTIFICATIONS},
        "compute_resource": {"rescue_iso_url": "", "balance_strategy": "round-robin"},
        "non_existent_vms_remover": {"enabled": False, "interval": 24},
        "billing_integration": {"type": "none", "drivers": {"whmcs": {"url": "", "token": ""}}},
        "dns": {
            "type": "none",
            "server_hostname_template": "{{uuid}}.example.test",
            "register_fqdn_on_server_create": False,
            "reverse_dns_domain_template": "",
            "drivers": {"power_dns": {"host": "", "api_key": ""}},
        },
        "update": {
            "method": "auto",
            "channel": "stable",
            "scheduled_days": [1, 2, 3, 4, 5, 6, 7],
            "scheduled_time": "03:00",
        },
        "features": {
            "hide_plan_name": False,
            "hide_user_data": False,
            "hide_plan_section": False,
            "hide_location_section": False,
            "allow_registration": True,
            "allow_password_recovery": True,
            "hide_api_documentation_link": False,
        },
    }


def _limit(unit: str) -> dict[str, Any]:
    return {"is_enabled": False, "limit": 0, "unit": unit}


def seed_plan(
    pid: int, name: str, vcpu: int, ram_mib: int, tph: int, tpm: int, itph: int, itpm: int
) -> dict[str, Any]:
    """A plan as SolusIO stores it; `price` is rendered per answer (`plan_json`)."""
    backup_price = SEED_BACKUP_PRICES.get(pid, 0)
    return {
        "id": pid,
        "name": name,
        "virtualization_type": "kvm",
        "params": {
            "disk": 20,
            "ram": ram_mib * 1024 * 1024,
            "vcpu": vcpu,
            "vcpu_units": 1000,
            "vcpu_limit": 100,
            "io_priority": 4,
            "swap": 0,
        },
        "storage_type": "fb",
        "image_format": "qcow2",
        "is_default": pid == 1,
        "is_snapshot_available": True,
        "is_snapshots_enabled": False,
        "is_backup_available": backup_price > 0,
        "is_additional_ips_available": itph > 0 or itpm > 0,
        "backup_settings": {"is_incremental_backup_enabled": False, "incremental_backups_limit": 3},
        "backup_price": backup_price,
        "is_visible": True,
        "limits": {
            "disk_bandwidth": _limit("Bps"),
            "disk_iops": _limit("iops"),
            "network_incoming_bandwidth": _limit("Kbps"),
            "network_outgoing_bandwidth": _limit("Kbps"),
            "network_incoming_traffic": _limit("KiB"),
            "network_outgoing_traffic": _limit("KiB"),
            "network_total_traffic": _limit("KiB"),
            "network_reduce_bandwidth": _limit("Kbps"),
            "backups_number": {"is_enabled": True, "limit": 7, "unit": "units"},
        },
        "tokens_per_hour": tph,
        "tokens_per_month": tpm,
        "ip_tokens_per_hour": itph,
        "ip_tokens_per_month": itpm,
        "position": pid,
        "reset_limit_policy": "never",
        "network_traffic_limit_type": "separate",
        "available_locations": [dict(LOCATION)],
        "available_os_image_versions": [{"id": i, "name": n} for i, n in OS_IMAGE_VERSIONS.items()],
        "available_applications": [{"id": i, "name": n} for i, n in APPLICATIONS.items()],
        "netfilter": {"value": "full", "is_editable": True},
        "ppp": {"value": False, "is_editable": True},
        "tun_tap": {"value": False, "is_editable": True},
    }


def plan_price(plan: dict[str, Any]) -> dict[str, Any]:
    """The display prices of a plan (two decimals, half-up, as a shop shows them)."""

    def money(tokens: Any) -> Decimal:
        return (Decimal(tokens) * DISPLAY_TOKEN_PRICE).quantize(Decimal("0.01"), ROUND_HALF_UP)

    per_month = money(plan["tokens_per_month"])
    backup = (per_month * Decimal(str(plan["backup_price"])) / 100).quantize(
        Decimal("0.01"), ROUND_HALF_UP
    )
    return {
        "additional_ips_per_hour": str(money(plan["ip_tokens_per_hour"])),
        "additional_ips_per_month": str(money(plan["ip_tokens_per_month"])),
        "per_hour": str(money(plan["tokens_per_hour"])),
        "per_month": str(per_month),
        "currency_code": "USD",
        "taxes_inclusive": False,
        "taxes": [],
        "total_price_without_backups": str(per_month),
        "total_price": str(per_month + backup),
        "backup_price": str(backup),
    }


def plan_json(plan: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(plan)
    out["price"] = plan_price(plan)
    return out


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
            self.usage = UsageFeed(self.timeline, backups=self.backup_spans)
            self.users: dict[int, dict[str, Any]] = {}
            self.emails: dict[str, int] = {}
            self.tokens: dict[str, int] = {}
            self.explicit: list[Segment] = []
            self.next_explicit_id = 10**12
            self.next_token_id = 1
            self.explicit_traits: dict[int, tuple[str, bool]] = {}
            # (status, backups) set through the control API, over any server's own.
            self.changed_traits: dict[int, tuple[str, bool]] = {}
            # Each server's paid-backups switches through the control API, (when, on), in
            # order: /usage bills backups from a switch on to the next switch off.
            self.backup_switches: dict[int, list[tuple[int, bool]]] = {}
            self._filtered: OrderedDict[tuple[Any, ...], list[Segment]] = OrderedDict()
            self.plans = {
                pid: seed_plan(pid, name, vcpu, ram, tph, tpm, itph, itpm)
                for pid, name, vcpu, ram, tph, tpm, itph, itpm in SEED_PLANS
            }
            self.limit_groups = {
                gid: {
                    "id": gid,
                    "name": name,
                    "vms": {"limit": vms[0], "is_enabled": vms[1]},
                    "running_vms": {"limit": running[0], "is_enabled": running[1]},
                    "additional_ips": {"limit": ips[0], "is_enabled": ips[1]},
                    "created_at": iso(EPOCH),
                    "updated_at": iso(EPOCH),
                }
                for gid, name, vms, running, ips in SEED_LIMIT_GROUPS
            }
            self.settings = fresh_settings(self.limit_groups[1])
            self.role_counts: Counter[int] = Counter()
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
            self.role_counts[2] = config.users
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
            "roles": [self.role_json(r) for r in user["roles"]],
            "created_at": user["created_at"],
        }

    def role_json(self, rid: int) -> dict[str, Any]:
        name, is_default = ROLES[rid]
        count = self.role_counts[rid] + (1 if rid == 1 else 0)  # the admin account
        return {"id": rid, "name": name, "is_default": is_default, "users_count": count}

    def list_roles(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.role_json(r) for r in ROLES]

    def get_role(self, rid: int) -> dict[str, Any]:
        with self.lock:
            if rid not in ROLES:
                raise Missing
            return self.role_json(rid)

    def account_json(self) -> dict[str, Any]:
        """The API token's owner, as GET /account answers it."""
        return {
            "id": ADMIN_ID,
            "email": ADMIN_EMAIL,
            "status": "active",
            "billing_user_id": None,
            "limit_group": None,
            "language": {"id": 1, "name": LANGUAGES[1][0], "locale": LANGUAGES[1][1]},
            "roles": [self.role_json(1)],
            "created_at": iso(EPOCH),
        }

    def login(self, body: dict[str, Any], token: str) -> dict[str, Any]:
        """E-mail and password login (the SDK's EmailAndPasswordAuthenticator): the admin
        account signs in with the simulator's API token as its password and gets that token."""
        errors: dict[str, list[str]] = {}
        for key in ("email", "password"):
            if not isinstance(body.get(key), str) or not body[key]:
                errors[key] = [f"The {key} field is required."]
        if errors:
            raise Invalid(errors)
        known = body["email"].lower() == ADMIN_EMAIL and secrets.compare_digest(
            body["password"].encode(), token.encode()
        )
        if not known:
            raise Invalid({"email": ["These credentials do not match our records."]})
        return {
            "credentials": {
                "access_token": token,
                "token_type": "Bearer",
                "expires_at": iso(self.now() + DAY),
            }
        }

    def get_user(self, uid: int) -> dict[str, Any]:
        with self.lock:
            user = self.users.get(uid)
            if user is None:
                raise Missing
            return self.user_json(user)

    def list_users(
        self, search: str | None, start: int, count: int, status: str | None = None
    ) -> tuple[list[Any], int]:
        with self.lock:
            if search or status is not None:
                needle = (search or "").lower()
                hits = [
                    u
                    for u in self.users.values()
                    if needle in u["email"].lower() and status in (None, u["status"])
                ]
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
            self.role_counts.update(user["roles"])
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
            if "roles" in clean:
                self.role_counts.subtract(user["roles"])
                self.role_counts.update(clean["roles"])
            user.update(clean)
            return self.user_json(user)

    def delete_user(self, uid: int) -> None:
        with self.lock:
            user = self.users.pop(uid, None)
            if user is None:
                raise Missing
            del self.emails[user["email"].lower()]
            self.role_counts.subtract(user["roles"])

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

    def list_plans(self, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Plans, filtered as the SDK's FilterPlans asks (search in the name, storage type,
        image format, disk size); unknown filters are ignored."""
        with self.lock:
            plans = list(self.plans.values())
        for key, value in (filters or {}).items():
            if key == "search":
                plans = [p for p in plans if value.lower() in p["name"].lower()]
            elif key in ("storage_type", "image_format"):
                plans = [p for p in plans if p[key] == value]
            elif key == "disk":
                plans = [p for p in plans if str(p["params"]["disk"]) == value]
        with self.lock:
            return [plan_json(p) for p in plans]

    def get_plan(self, pid: int) -> dict[str, Any]:
        with self.lock:
            plan = self.plans.get(pid)
            if plan is None:
                raise Missing
            return plan_json(plan)

    def plan_prices(self) -> dict[int, dict[str, Any]]:
        """id, name, token and backup prices of every plan: what a usage row repeats,
        without copying whole plans for every page."""
        keys = ("id", "name", *_TOKEN_FIELDS, "backup_price")
        with self.lock:
            return {pid: {k: plan[k] for k in keys} for pid, plan in self.plans.items()}

    def update_plan(self, pid: int, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /plans/{id}: a whole PlanUpdateRequest, as the official SDK sends it. A field it
        always sends missing is refused with a 422 naming it (a strict SolusIO's answer: a
        partial body could reset what it leaves out); every field sent is validated, kept."""
        with self.lock:
            plan = self.plans.get(pid)
            if plan is None:
                raise Missing
            errors: dict[str, list[str]] = {
                key: [f"The {key.replace('_', ' ')} field is required."]
                for key in schemas.PLAN_UPDATE_REQUEST["required"]
                if key not in body
            }
            clean: dict[str, Any] = {}
            for key in _TOKEN_FIELDS:
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
            for key, schema in schemas.PLAN_UPDATE_FIELDS.items():
                if key in clean or key in errors or key not in body:
                    continue
                label = key.replace("_", " ")
                value = body[key]
                if schemas.problems(schema, value):
                    errors[key] = [f"The {label} field is invalid."]
                elif key in _PLAN_LISTS:
                    known = _PLAN_LISTS[key]
                    if any(i not in known for i in value):
                        errors[key] = [f"The selected {label} is invalid."]
                    else:
                        clean[key] = [{"id": i, "name": known[i]} for i in value]
                elif key == "backup_price" and value < 0:
                    errors[key] = [f"The {label} must be at least 0."]
                elif key == "limits":
                    clean[key] = {**plan["limits"], **copy.deepcopy(value)}
                else:
                    clean[key] = copy.deepcopy(value)
            if errors:
                raise Invalid(errors)
            if clean.get("is_default"):
                for other in self.plans.values():
                    other["is_default"] = False
            plan.update(clean)
            return plan_json(plan)

    def list_limit_groups(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(g) for g in self.limit_groups.values()]

    def get_settings(self) -> dict[str, Any]:
        with self.lock:
            return self._settings_json(self.settings)

    def _settings_json(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings with their default limit group as it is now (renamed, or deleted)."""
        out = copy.deepcopy(settings)
        chosen = settings["limit_group"]
        group = self.limit_groups.get(chosen["id"]) if chosen else None
        out["limit_group"] = copy.deepcopy(group)
        return out

    def patch_settings(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            errors: dict[str, list[str]] = {}
            merged = copy.deepcopy(self.settings)
            body = dict(body) if isinstance(body, dict) else body
            if isinstance(body, dict) and "limit_group" in body:
                # The default limit group of new users: kept as the group its id names (the
                # SDK sends the whole group object, a plain id is read the same way).
                chosen = body.pop("limit_group")
                gid = chosen.get("id") if isinstance(chosen, dict) else chosen
                if gid is None:
                    merged["limit_group"] = None
                elif isinstance(gid, bool) or gid not in self.limit_groups:
                    errors["limit_group"] = ["The selected limit group is invalid."]
                else:
                    merged["limit_group"] = copy.deepcopy(self.limit_groups[gid])
            _merge(merged, body, "", errors)
            if errors:
                raise Invalid(errors)
            self.settings = merged
            return self._settings_json(merged)

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
            status = body.get("status", "started")
            if status not in SERVER_STATUSES:
                raise Invalid({"status": ["The selected status is invalid."]})
            self.explicit_traits[sid] = (status, bool(body.get("backups", False)))
            self._filtered.clear()
            starts: list[tuple[int, int]] = [(created, int(pid)), *sorted(cuts)]
            for i, (start, plan_id) in enumerate(starts):
                end = starts[i + 1][0] if i + 1 < len(starts) else deleted
                self.explicit.append(
                    Segment(sid, -1, int(uid), created, start, end, plan_id, has_ip)
                )
            return {"id": sid, "uuid": self.timeline.server_uuid(sid)}

    def change_servers(self, body: dict[str, Any]) -> dict[str, Any]:
        """Control API: set `status` and/or `backups` of the servers `ids` (seeded or
        hand-made), as a staff member or the customer would in SolusIO."""
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise Invalid({"ids": ["A list of server ids is required."]})
        status = body.get("status")
        if status is not None and status not in SERVER_STATUSES:
            raise Invalid({"status": ["The selected status is invalid."]})
        backups = body.get("backups")
        if backups is not None and not isinstance(backups, bool):
            raise Invalid({"backups": ["The backups field must be true or false."]})
        with self.lock:
            now = self.now()
            for sid in ids:
                old_status, old_backups = self._traits_of(sid)
                self.changed_traits[sid] = (
                    old_status if status is None else status,
                    old_backups if backups is None else backups,
                )
                if backups is not None and backups != old_backups:
                    self.backup_switches.setdefault(sid, []).append((now, backups))
            self._filtered.clear()
            self.usage.forget()  # backup rows come and go: every page index is stale
        return {"changed": len(ids)}

    def set_clock(self, body: dict[str, Any]) -> dict[str, Any]:
        """Control API: move the simulator's clock to `now` (Unix seconds)."""
        now = body.get("now")
        if not isinstance(now, int) or isinstance(now, bool) or now < 0:
            raise Invalid({"now": ["The now field must be Unix seconds."]})
        with self.lock:
            self.config = replace(self.config, now=now)
        return {"now": now}

    def _traits_of(self, sid: int) -> tuple[str, bool]:
        if sid in self.changed_traits:
            return self.changed_traits[sid]
        if sid in self.explicit_traits:
            return self.explicit_traits[sid]
        tl = self.timeline
        slot = sid - 1 if 1 <= sid <= tl.slots else (sid - tl.slots - 1) // 4 % max(tl.slots, 1)
        return tl.traits(sid, slot)

    def backup_spans(self, seg: Segment) -> list[tuple[int, int | None]]:
        """The stretches of `seg` (start, end; None: still running) with paid backups on:
        the server's own setting until its first switch through the control API, then
        each switch's from its time on."""
        switches = self.backup_switches.get(seg.server_id, [])
        if seg.slot < 0:
            first = self.explicit_traits.get(seg.server_id, ("started", False))[1]
        else:
            first = self.timeline.traits(seg.server_id, seg.slot)[1]
        # (from, on) pieces; a piece runs to the next one's start.
        pieces = [(seg.start, first), *((max(at, seg.start), on) for at, on in switches)]
        spans: list[tuple[int, int | None]] = []
        for i, (start, on) in enumerate(pieces):
            end = pieces[i + 1][0] if i + 1 < len(pieces) else seg.end
            if seg.end is not None and start >= seg.end:
                break
            if on and (end is None or end > start):
                if spans and spans[-1][1] == start:  # on, then switched on again
                    start = spans.pop()[0]
                spans.append((start, end))
        return spans

    def traits(self, seg: Segment) -> tuple[str, bool]:
        """(status, backups enabled) of the server of `seg`."""
        changed = self.changed_traits.get(seg.server_id)
        if changed is not None:
            return changed
        if seg.slot < 0:
            return self.explicit_traits.get(seg.server_id, ("started", False))
        return self.timeline.traits(seg.server_id, seg.slot)

    def server_json(self, seg: Segment, shared: dict[Any, Any] | None = None) -> dict[str, Any]:
        """A virtual server as the SDK reads it. `shared` holds the plan, user and location
        objects already rendered for one page, so a page renders each only once."""
        if shared is None:
            shared = {}
        sid = seg.server_id
        tl = self.timeline
        plan = shared.get(("plan", seg.plan_id))
        if plan is None:
            plan = shared[("plan", seg.plan_id)] = plan_json(self.plans[seg.plan_id])
        user = shared.get(("user", seg.user_id))
        if user is None:
            stored = self.users.get(seg.user_id)
            user = self.user_json(stored) if stored else _gone_user(seg.user_id)
            shared[("user", seg.user_id)] = user
        location = shared.get("location")
        if location is None:
            location = shared["location"] = self.location_json()
        status, backups = self.traits(seg)
        primary = _ip(sid * 2, f"10.{(sid >> 16) & 255}.{(sid >> 8) & 255}.{sid & 255}", 1)
        ips = [primary]
        if seg.has_ip:
            ips.append(_ip(sid * 2 + 1, f"172.16.{(sid >> 8) & 255}.{sid & 255}", 2))
        hour = sid % 6
        now = self.now()
        next_backup = now - now % DAY + hour * 3600
        if next_backup <= now:
            next_backup += DAY
        params = plan["params"]
        cpu = (hash3(tl.seed, sid, 0xC9) % 1000) / 10 if status == "started" else 0.0
        return {
            "id": sid,
            "name": tl.server_name(sid),
            "description": "",
            "virtualization_type": plan["virtualization_type"],
            "uuid": tl.server_uuid(sid),
            "specifications": {k: params[k] for k in ("disk", "ram", "vcpu")},
            "status": status,
            "ips": ips,
            "ip_addresses": {
                "ipv4": [
                    {"id": ip["id"], "ip": ip["ip"], "is_primary": i == 0}
                    for i, ip in enumerate(ips)
                ],
                "ipv6": [],
            },
            "location": location,
            "plan": plan,
            "fqdns": [tl.server_name(sid)],
            "boot_mode": "disk",
            "is_suspended": user["status"] == "suspended",
            "is_processing": status == "processing",
            "user": user,
            "project": {
                "id": seg.user_id,
                "name": "Default Project",
                "description": "",
                "members": 1,
                "is_owner": True,
                "is_default": True,
                "owner": user,
                "servers": len(range(seg.user_id - 1, tl.slots, tl.users)) if tl.users else 0,
            },
            "usage": {"cpu": cpu},
            "backup_settings": {
                "enabled": backups,
                "schedule": {"type": "daily", "time": {"hour": hour, "minutes": 0}, "days": []},
                "limit": {"is_enabled": True, "limit": 7, "unit": "units"},
            },
            "next_scheduled_backup_at": iso(next_backup) if backups else None,
            "ssh_keys": [],
            "created_at": iso(seg.created),
        }

    def location_json(self) -> dict[str, Any]:
        return {
            **LOCATION,
            "icon": {"id": 1, "name": "Germany", "url": "", "type": "flags"},
            "description": "The simulator's only location",
            "is_default": True,
            "is_visible": True,
            "compute_resources": [],
            "available_plans": [{"id": p["id"], "name": p["name"]} for p in self.plans.values()],
        }

    def find_server(self, sid: int) -> Segment:
        """The current segment of server `sid` if it is alive now."""
        now = self.now()
        with self.lock:
            tl = self.timeline
            candidates: list[Segment] = [
                s for s in self.explicit if s.server_id == sid and s.start <= now
            ]
            if 1 <= sid <= tl.slots:
                candidates.extend(tl.segments(sid - 1, now, now + 1))
            elif sid > tl.slots and tl.slots:
                # A churn server: its id names its slot, month and number (Timeline._churn_id).
                slot = (sid - tl.slots - 1) // 4 % tl.slots
                candidates.extend(s for s in tl.segments(slot, now, now + 1) if s.server_id == sid)
            for seg in candidates:
                if seg.server_id == sid and seg.start <= now and (seg.end is None or seg.end > now):
                    return seg
        raise Missing

    def get_server(self, sid: int) -> dict[str, Any]:
        seg = self.find_server(sid)
        with self.lock:
            return self.server_json(seg)

    def server_matches(self, seg: Segment, filters: dict[str, str]) -> bool:
        """Whether the server passes the SDK's server filters; the simulator has one compute
        resource, id 1. Unknown filters are ignored, as Laravel does."""
        if "status" in filters and self.traits(seg)[0] != filters["status"]:
            return False
        kind = filters.get("virtualization_type")
        if kind is not None and self.plans[seg.plan_id]["virtualization_type"] != kind:
            return False
        return filters.get("compute_resource_id", "1") == "1"

    def filtered_servers(self, now: int, filters: dict[str, str]) -> list[Segment]:
        """Servers alive at `now` that pass `filters`. Every server is looked at, so the
        answer is kept for the pages that follow (a few filters, until servers are added)."""
        key = (now, tuple(sorted(filters.items())))
        with self.lock:
            found = self._filtered.get(key)
        if found is None:
            rows, _ = self.usage.rows(now, now + 1, 0, 2**62, self.explicit, with_ips=False)
            found = [seg for seg, _ in rows if self.server_matches(seg, filters)]
            with self.lock:
                self._filtered[key] = found
                while len(self._filtered) > 8:
                    self._filtered.popitem(last=False)
        return found

    def servers_of(self, uid: int) -> list[Segment]:
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
            return segments

    def billing_ids(self, user_ids: Iterable[int]) -> dict[int, int | None]:
        """Current billing links of some users (those on one usage page); deleted ones left out."""
        with self.lock:
            users = self.users
            return {uid: users[uid]["billing_user_id"] for uid in set(user_ids) if uid in users}


def _ip(ip_id: int, address: str, block: int) -> dict[str, Any]:
    network = address.rsplit(".", 1)[0]
    return {
        "id": ip_id,
        "ip": address,
        "ip_block": {
            "id": block,
            "name": "Primary IPv4" if block == 1 else "Additional IPv4",
            "type": "IPv4",
            "list_type": "range",
            "gateway": f"{network}.1",
            "netmask": "255.255.255.0",
            "ns_1": "192.0.2.53",
            "ns_2": "198.51.100.53",
            "from": f"{network}.2",
            "to": f"{network}.254",
            "subnet": 24,
            "range": f"{network}.0/24",
            "reverse_dns": {"zone": "", "enabled": False},
        },
    }


def _gone_user(uid: int) -> dict[str, Any]:
    """The owner of a server whose user was deleted (SolusIO deletes such servers; the
    simulator keeps the timeline, so it shows an empty user)."""
    return {
        "id": uid,
        "email": "",
        "status": "active",
        "billing_user_id": None,
        "limit_group": None,
        "language": None,
        "roles": [],
        "created_at": iso(EPOCH),
    }


_TOKEN_FIELDS = ("tokens_per_hour", "tokens_per_month", "ip_tokens_per_hour", "ip_tokens_per_month")
_PLAN_LISTS: dict[str, dict[int, str]] = {
    "available_locations": {1: "Frankfurt"},
    "available_os_image_versions": OS_IMAGE_VERSIONS,
    "available_applications": APPLICATIONS,
}
# Settings maps whose keys are free (a locale each), not a fixed set of fields.
_FREE_MAPS = ("subject_templates", "body_templated")


def _merge(target: dict[str, Any], patch: Any, prefix: str, errors: dict[str, list[str]]) -> None:
    """PATCH semantics: known keys only, each keeping its JSON type; unknown keys ignored."""
    if not isinstance(patch, dict):
        errors[prefix.rstrip(".") or "settings"] = ["The settings must be an object."]
        return
    for key, value in patch.items():
        name = f"{prefix}{key}"
        if prefix.rstrip(".").rpartition(".")[2] in _FREE_MAPS:
            if not isinstance(value, str):
                errors[name] = [f"The {name} must be a string."]
            else:
                target[key] = value
            continue
        if key not in target:
            continue
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
        elif isinstance(current, int):
            if isinstance(value, bool) or not isinstance(value, int):
                errors[name] = [f"The {name} must be an integer."]
            else:
                target[key] = value
        elif isinstance(current, list):
            if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            ):
                errors[name] = [f"The {name} must be a list of integers."]
            else:
                target[key] = list(value)
        else:
            target[key] = value
