"""Create the first admin account and a staff API key, once (used by bin/run)."""

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from bridge.api_keys import create_api_key
from bridge.models import ApiKey


class Command(BaseCommand):
    help = (
        "Create a superuser (DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD, default "
        "admin / admin) when no superuser exists yet, and a staff API key for it when it has "
        "none: the key is printed this once (only its digest is stored)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        admin = user_model.objects.filter(is_superuser=True).order_by("pk").first()
        if admin is None:
            password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "admin")
            admin = user_model.objects.create_superuser(
                username=username,
                email=os.environ.get("DJANGO_SUPERUSER_EMAIL", "admin@localhost"),
                password=password,
            )
            shown = (
                "from DJANGO_SUPERUSER_PASSWORD"
                if "DJANGO_SUPERUSER_PASSWORD" in os.environ
                else "admin"
            )
            self.stdout.write(f"Created admin user {username!r} (password: {shown}).")
        else:
            self.stdout.write(f"Admin user {admin.get_username()!r} already exists.")
        if ApiKey.objects.filter(user=admin).exists():
            self.stdout.write(
                f"{admin.get_username()!r} has a staff API key already (shown once when it was "
                "made); make another in the admin under API keys or with "
                f"`manage.py create_api_key {admin.get_username()}`."
            )
            return
        _, key = create_api_key(user=admin, name="made by bootstrap_admin")
        self.stdout.write(
            f"Staff API key of {admin.get_username()!r} (shown this once): {key}\n"
            f"  use it as: Authorization: Token {key}"
        )
