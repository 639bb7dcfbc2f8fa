"""JSON Schemas of SolusIO's objects as the official Go SDK (solusio/solus-go-sdk) reads them.

Written by hand from the SDK's structs (plans.go, virtual_servers.go, users.go, settings.go,
limitGroup.go, roles.go, projects.go, ipBlocks.go, locations.go, authLogin.go): every field
the SDK declares is required here, with its JSON type. The conformance test validates the
simulator's answers against them, and the client's record parsers take their field readers
from them (`reader`), so neither can drift from the SDK without a test failing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from solusio import _parse as p

Schema = dict[str, Any]

INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}  # Go float64
STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
# Laravel's JSON dates (2025-01-31T12:00:00.000000Z); the SDK keeps them as strings.
TIME: Schema = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"}


def obj(properties: Mapping[str, Schema], *, optional: Iterable[str] = ()) -> Schema:
    """An object whose listed properties are all required except `optional`; extras allowed
    (Go's decoder ignores fields it does not know, and so does the bridge)."""
    skip = set(optional)
    return {
        "type": "object",
        "properties": dict(properties),
        "required": [k for k in properties if k not in skip],
    }


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def nullable(schema: Schema) -> Schema:
    # Go decodes null into a field's zero value, so null is readable wherever the SDK reads;
    # the schemas allow it only where SolusIO (and the simulator) send it.
    return {"anyOf": [schema, {"type": "null"}]}


SHORT = obj({"id": INT, "name": STR})  # ShortPlan, ShortLocation, ShortOsImageVersion

ROLE = obj({"id": INT, "name": STR, "is_default": BOOL, "users_count": INT})
USER_STATUSES = ("active", "locked", "suspended")
# `password` and `billing_token` are in the SDK's struct but no answer carries them.
USER = obj(
    {
        "id": INT,
        "email": STR,
        "created_at": TIME,
        "status": enum(*USER_STATUSES),
        "roles": array(ROLE),
        "billing_user_id": nullable(INT),
        "password": STR,
        "billing_token": STR,
    },
    optional=("password", "billing_token"),
)

LIMIT = obj({"limit": INT, "is_enabled": BOOL})
LIMIT_GROUP = obj(
    {
        "id": INT,
        "name": STR,
        "created_at": TIME,
        "updated_at": TIME,
        "vms": LIMIT,
        "running_vms": LIMIT,
        "additional_ips": LIMIT,
    }
)

VIRTUALIZATION_TYPES = ("kvm", "vz")
STORAGE_TYPES = ("fb", "lvm", "thinlvm", "nfs", "vz")
IMAGE_FORMATS = ("qcow2", "raw", "ploop")
RESET_LIMIT_POLICIES = ("never", "first_day_of_month", "vm_created_day")
TRAFFIC_LIMIT_TYPES = ("separate", "total")


def _limit(*units: str) -> Schema:
    return obj({"is_enabled": BOOL, "limit": INT, "unit": enum(*units)})


BANDWIDTH_LIMIT = _limit("Kbps", "Mbps", "Gbps")
TRAFFIC_LIMIT = _limit("KiB", "MiB", "GiB", "TiB", "PiB")
UNITS_LIMIT = _limit("units")
UPDATE_LIMITS: dict[str, Schema] = {
    "network_incoming_bandwidth": BANDWIDTH_LIMIT,
    "network_outgoing_bandwidth": BANDWIDTH_LIMIT,
    "network_incoming_traffic": TRAFFIC_LIMIT,
    "network_outgoing_traffic": TRAFFIC_LIMIT,
    "network_total_traffic": TRAFFIC_LIMIT,
    "network_reduce_bandwidth": BANDWIDTH_LIMIT,
    "backups_number": UNITS_LIMIT,
}
PLAN_LIMITS = obj({"disk_bandwidth": _limit("Bps"), "disk_iops": _limit("iops"), **UPDATE_LIMITS})
PLAN_PARAMS = obj(
    {
        "disk": INT,  # GiB
        "ram": INT,  # bytes
        "vcpu": INT,
        "vcpu_units": INT,
        "vcpu_limit": INT,
        "io_priority": INT,
        "swap": INT,
    }
)
PLAN_BACKUP_SETTINGS = obj(
    {"is_incremental_backup_enabled": BOOL, "incremental_backups_limit": INT}
)
# Prices as SolusIO renders them from the billing side's token pricing: display strings.
PLAN_PRICE = obj(
    {
        "additional_ips_per_hour": STR,
        "additional_ips_per_month": STR,
        "per_hour": STR,
        "per_month": STR,
        "currency_code": STR,
        "taxes_inclusive": BOOL,
        "taxes": {"type": "array"},
        "total_price_without_backups": STR,
        "total_price": STR,
        "backup_price": STR,
    }
)
NETFILTER = obj({"value": enum("disabled", "stateless", "stateful", "full"), "is_editable": BOOL})
SWITCH = obj({"value": BOOL, "is_editable": BOOL})  # PPP, TUNTAP

# Fields a PlanUpdateRequest sends (the SDK always sends all of them; ids for the lists).
PLAN_UPDATE_FIELDS: dict[str, Schema] = {
    "name": STR,
    "limits": obj(UPDATE_LIMITS),
    "tokens_per_hour": INT,
    "tokens_per_month": INT,
    "ip_tokens_per_hour": INT,
    "ip_tokens_per_month": INT,
    "is_visible": BOOL,
    "is_default": BOOL,
    "is_snapshots_enabled": BOOL,
    "is_backup_available": BOOL,
    "is_additional_ips_available": BOOL,
    "backup_settings": PLAN_BACKUP_SETTINGS,
    # A percentage of the server's price (SolusVM 2 "paid backups"), a float in the SDK.
    "backup_price": NUM,
    "reset_limit_policy": enum(*RESET_LIMIT_POLICIES),
    "network_traffic_limit_type": enum(*TRAFFIC_LIMIT_TYPES),
    "available_locations": array(INT),
    "available_os_image_versions": array(INT),
    "available_applications": array(INT),
    "netfilter": NETFILTER,
    "ppp": SWITCH,
    "tun_tap": SWITCH,
}
PLAN_UPDATE_REQUEST = obj(
    PLAN_UPDATE_FIELDS,
    # omitempty in the SDK: absent when empty.
    optional=(
        "available_locations",
        "available_os_image_versions",
        "available_applications",
        "netfilter",
        "ppp",
        "tun_tap",
    ),
)


def plan_update_request(plan: Mapping[str, Any]) -> dict[str, Any]:
    """The PlanUpdateRequest the official SDK would send for `plan` (a `GET /plans/{id}`
    answer), unchanged: every field the plan has, lists as ids, limits without the read-only
    disk ones, the SDK's omitempty fields left out when empty.

    Fields the answer lacks are left out rather than invented: a strict SolusIO then names
    them in its 422 instead of the bridge resetting them to a guess."""
    body: dict[str, Any] = {}
    omitempty = set(PLAN_UPDATE_FIELDS) - set(PLAN_UPDATE_REQUEST["required"])
    for key in PLAN_UPDATE_FIELDS:
        if key not in plan:
            continue
        value = plan[key]
        if key == "limits" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k in UPDATE_LIMITS}
        elif key.startswith("available_") and isinstance(value, list):
            value = [v["id"] if isinstance(v, Mapping) else v for v in value]
        if key in omitempty and not value:
            continue
        body[key] = value
    return body


PLAN = obj(
    {
        **PLAN_UPDATE_FIELDS,
        "id": INT,
        "virtualization_type": enum(*VIRTUALIZATION_TYPES),
        "params": PLAN_PARAMS,
        "storage_type": enum(*STORAGE_TYPES),
        "image_format": enum(*IMAGE_FORMATS),
        "is_snapshot_available": BOOL,
        "limits": PLAN_LIMITS,
        "position": NUM,
        "price": PLAN_PRICE,
        "available_locations": array(SHORT),
        "available_os_image_versions": array(SHORT),
        "available_applications": array(SHORT),
    }
)

ICON = obj({"id": INT, "name": STR, "url": STR, "type": STR})
LOCATION = obj(
    {
        "id": INT,
        "name": STR,
        "icon": nullable(ICON),
        "description": STR,
        "is_default": BOOL,
        "is_visible": BOOL,
        "compute_resources": {"type": "array"},
        "available_plans": array(SHORT),
    }
)
# The SDK tags two IPBlock fields "compute_resources[]" and "ips[]"; no answer has such keys.
IP_BLOCK = obj(
    {
        "id": INT,
        "name": STR,
        "type": enum("IPv4", "IPv6"),
        "list_type": enum("range", "set"),
        "gateway": STR,
        "netmask": STR,
        "ns_1": STR,
        "ns_2": STR,
        "from": STR,
        "to": STR,
        "subnet": INT,
        "range": STR,
        "reverse_dns": obj({"zone": STR, "enabled": BOOL}),
    }
)
IP_ADDRESS = obj({"id": INT, "ip": STR, "ip_block": IP_BLOCK})
# Not in the SDK (it reads `ips`): the same addresses by family, with the primary marked.
IP_ADDRESSES = obj(
    {
        "ipv4": array(obj({"id": INT, "ip": STR, "is_primary": BOOL})),
        "ipv6": array(obj({"id": INT, "ip": STR, "is_primary": BOOL})),
    }
)
PROJECT = obj(
    {
        "id": INT,
        "name": STR,
        "description": STR,
        "members": INT,
        "is_owner": BOOL,
        "is_default": BOOL,
        "owner": USER,
        "servers": INT,
    }
)
SSH_KEY = obj({"id": INT, "name": STR, "body": STR})
SERVER_STATUSES = ("started", "stopped", "processing", "paused", "unavailable", "not exists")
SERVER_BACKUP_SETTINGS = obj(
    {
        "enabled": BOOL,
        "schedule": obj(
            {
                "type": enum("monthly", "weekly", "daily"),
                "time": obj({"hour": INT, "minutes": INT}),
                "days": array(INT),
            },
            optional=("days",),
        ),
        "limit": UNITS_LIMIT,
    }
)
SERVER = obj(
    {
        "id": INT,
        "name": STR,
        "description": STR,
        "virtualization_type": enum(*VIRTUALIZATION_TYPES),
        "uuid": STR,
        "specifications": obj({"disk": INT, "ram": INT, "vcpu": INT}),
        "status": enum(*SERVER_STATUSES),
        "ips": array(IP_ADDRESS),
        "ip_addresses": IP_ADDRESSES,
        "location": LOCATION,
        "plan": PLAN,
        "fqdns": array(STR),
        "boot_mode": enum("disk", "rescue"),
        "is_suspended": BOOL,
        "is_processing": BOOL,
        "user": USER,
        "project": PROJECT,
        "usage": obj({"cpu": NUM}),
        "backup_settings": SERVER_BACKUP_SETTINGS,
        "next_scheduled_backup_at": nullable(TIME),
        "ssh_keys": array(SSH_KEY),
        "created_at": TIME,
    }
)


def _template() -> Schema:
    text_map = {"type": "object", "additionalProperties": STR}
    return obj({"enabled": BOOL, "subject_templates": text_map, "body_templated": text_map})


NOTIFICATIONS = (
    "server_create",
    "server_reset_password",
    "user_reset_password",
    "user_verify_email",
    "project_user_invite",
    "project_user_left",
    "server_incoming_traffic_exceeded",
    "server_outgoing_traffic_exceeded",
)
FEATURES = (
    "hide_plan_name",
    "hide_user_data",
    "hide_plan_section",
    "hide_location_section",
    "allow_registration",
    "allow_password_recovery",
    "hide_api_documentation_link",
)
SETTINGS = obj(
    {
        "hostname": STR,
        "mail": obj(
            {
                "host": STR,
                "username": STR,
                "password": STR,
                "from_email": STR,
                "from_name": STR,
                "encryption": BOOL,
            }
        ),
        "send_statistics": BOOL,
        "limit_group": nullable(LIMIT_GROUP),
        "registration": obj({"role": STR}),
        "theme": obj(
            {
                "primary_color": STR,
                "secondary_color": STR,
                "brand_name": STR,
                "logo": STR,
                "favicon": STR,
                "terms_and_conditions_url": STR,
            }
        ),
        "network_rules": obj(
            {k: BOOL for k in ("arp", "dhcp", "cloud_init", "smtp", "icmp", "icmp_reply")}
        ),
        "notifications": obj({name: _template() for name in NOTIFICATIONS}),
        "compute_resource": obj({"rescue_iso_url": STR, "balance_strategy": STR}),
        "non_existent_vms_remover": obj({"enabled": BOOL, "interval": INT}),
        "billing_integration": obj(
            {"type": STR, "drivers": obj({"whmcs": obj({"url": STR, "token": STR})})}
        ),
        "dns": obj(
            {
                "type": STR,
                "server_hostname_template": STR,
                "register_fqdn_on_server_create": BOOL,
                "reverse_dns_domain_template": STR,
                "drivers": obj({"power_dns": obj({"host": STR, "api_key": STR})}),
            }
        ),
        "update": obj(
            {"method": STR, "channel": STR, "scheduled_days": array(INT), "scheduled_time": STR}
        ),
        "features": obj({k: BOOL for k in FEATURES}),
    }
)

CREDENTIALS = obj({"access_token": STR, "token_type": STR, "expires_at": STR})
AUTH_LOGIN_RESPONSE = obj({"credentials": CREDENTIALS})


def item(schema: Schema) -> Schema:
    """The envelope of a single object: {"data": ...}."""
    return obj({"data": schema})


def page(schema: Schema) -> Schema:
    """Laravel's paginated collection, as the SDK's paginatedResponse reads it."""
    link = nullable(STR)
    return obj(
        {
            "data": array(schema),
            "links": obj({"first": STR, "last": STR, "prev": link, "next": link}),
            "meta": obj(
                {
                    "current_page": INT,
                    "from": nullable(INT),
                    "last_page": INT,
                    "path": STR,
                    "per_page": INT,
                    "to": nullable(INT),
                    "total": INT,
                }
            ),
        }
    )


_VALIDATORS: dict[int, tuple[Schema, Any]] = {}


def problems(schema: Schema, instance: Any, where: str = "$") -> list[str]:
    """Every way `instance` breaks `schema`, as "path: message"; empty when it conforms."""
    held = _VALIDATORS.get(id(schema))
    if held is None or held[0] is not schema:
        # Imported here: the client's records use this module's readers, never a validator.
        from jsonschema import Draft202012Validator

        if len(_VALIDATORS) > 256:  # schemas made per call (page(...)) would pile up
            _VALIDATORS.clear()
        held = _VALIDATORS[id(schema)] = (schema, Draft202012Validator(schema))
    found = []
    for error in held[1].iter_errors(instance):
        path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in error.absolute_path)
        found.append(f"{where}{path}: {error.message}")
    return sorted(found)


# --- readers for the client's records -------------------------------------------------------

_MISSING: Any = object()
Reader = Callable[[Mapping[str, Any], str], Any]
_READERS: dict[str, Callable[..., Any]] = {
    "integer": p.integer,
    "string": p.string,
    "boolean": p.boolean,
    "number": p.number,
}


def reader(schema: Schema, key: str, *, default: Any = _MISSING) -> Reader:
    """A strict reader of `schema`'s property `key`, typed as the schema types it.

    The record parsers are built from these (fast: one of `_parse`'s readers per field, no
    schema walk per object). `default` makes a field the SDK declares optional for the
    bridge (older SolusIO versions without it)."""
    prop = schema["properties"][key]
    is_nullable = "anyOf" in prop
    if is_nullable:
        prop = prop["anyOf"][0]
    read = p.timestamp if prop is TIME else _READERS[prop["type"]]
    options: dict[str, Any] = {}
    if default is not _MISSING:
        options["default"] = default
    if is_nullable and read is not p.boolean:
        options["nullable"] = True

    def read_field(data: Mapping[str, Any], where: str) -> Any:
        return read(data, key, where, **options)

    return read_field
