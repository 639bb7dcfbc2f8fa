"""Request bodies as the official Go SDK sends them (its structs' JSON, defaults applied),
written for these tests from reading plans.go and settings.go."""

from typing import Any


def limit(unit: str, value: int = 0, enabled: bool = False) -> dict[str, Any]:
    return {"is_enabled": enabled, "limit": value, "unit": unit}


# PlansService.Update: every PlanUpdateRequest field, the limits' units defaulted, the
# omitempty lists present because they are set.
PLAN_UPDATE: dict[str, Any] = {
    "name": "2 Cores, 4 GB RAM (renamed)",
    "limits": {
        "network_incoming_bandwidth": limit("Mbps", 100, True),
        "network_outgoing_bandwidth": limit("Kbps"),
        "network_incoming_traffic": limit("GiB", 500, True),
        "network_outgoing_traffic": limit("KiB"),
        "network_total_traffic": limit("TiB", 2, True),
        "network_reduce_bandwidth": limit("Kbps"),
        "backups_number": limit("units", 3, True),
    },
    "tokens_per_hour": 29,
    "tokens_per_month": 20500,
    "ip_tokens_per_hour": 2,
    "ip_tokens_per_month": 900,
    "is_visible": False,
    "is_default": True,
    "is_snapshots_enabled": True,
    "is_backup_available": True,
    "is_additional_ips_available": False,
    "backup_settings": {"is_incremental_backup_enabled": True, "incremental_backups_limit": 5},
    "backup_price": 12.5,
    "reset_limit_policy": "first_day_of_month",
    "network_traffic_limit_type": "total",
    "available_locations": [1],
    "available_os_image_versions": [2, 3],
    "available_applications": [],
    "netfilter": {"value": "stateless", "is_editable": False},
    "ppp": {"value": True, "is_editable": False},
    "tun_tap": {"value": True, "is_editable": True},
}

# SettingsService.Patch with the theme and a few other sections (omitempty drops the rest).
SETTINGS_PATCH: dict[str, Any] = {
    "theme": {
        "primary_color": "#112233",
        "secondary_color": "#445566",
        "brand_name": "Example Cloud",
        "logo": "https://cloud.example.test/logo.svg",
        "favicon": "https://cloud.example.test/favicon.ico",
        "terms_and_conditions_url": "https://cloud.example.test/terms",
    },
    "network_rules": {"smtp": False, "icmp_reply": False},
    "notifications": {
        "server_create": {
            "enabled": False,
            "subject_templates": {"de_DE": "Ihr Server"},
            "body_templated": {"de_DE": "Hallo"},
        }
    },
    "non_existent_vms_remover": {"enabled": True, "interval": 12},
    "update": {"scheduled_days": [6, 7], "scheduled_time": "04:30"},
    "features": {"hide_location_section": True, "hide_api_documentation_link": True},
    "limit_group": {
        "id": 2,
        "name": "Unlimited",
        "created_at": "",
        "updated_at": "",
        "vms": {"limit": 0, "is_enabled": False},
        "running_vms": {"limit": 0, "is_enabled": False},
        "additional_ips": {"limit": 0, "is_enabled": False},
    },
}
