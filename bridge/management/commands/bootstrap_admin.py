"""Create the first admin account and a staff API token, once (used by bin/run)."""

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Create a superuser (DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD, default "
        "admin / admin) when no superuser exists yet, and print its staff API token."
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
        token, _ = Token.objects.get_or_create(user=admin)
        self.stdout.write(f"Staff API token of {admin.get_username()!r}: {token.key}")
