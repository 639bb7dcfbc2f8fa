"""Make a staff API key for a user and print it (the only time it is shown)."""

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from bridge.api_keys import create_api_key


class Command(BaseCommand):
    help = "Make a staff API key for USERNAME and print it; only its digest is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What uses the key.")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="Default: until revoked."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        if not user.is_staff:
            raise CommandError(f"{options['username']!r} is not staff: the API is staff-only.")
        days = options["expires_in_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        _, key = create_api_key(user=user, name=options["name"], expires_at=expires_at)
        self.stdout.write(key)
