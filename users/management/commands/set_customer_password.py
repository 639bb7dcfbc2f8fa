"""`manage.py set_customer_password ID`: a login for the customer pages (/account/)."""

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from users import services
from users.models import Customer


class Command(BaseCommand):
    help = "Set the password a customer signs in to /account/ with (e-mail + password)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("customer_id", type=int)
        parser.add_argument("--password", help="default: asked for (never echoed)")

    def handle(self, *args: Any, customer_id: int, password: str | None, **o: Any) -> None:
        password = password or getpass.getpass("Password: ")
        if len(password) < 8:
            raise CommandError("use at least 8 characters")
        try:
            services.set_customer_password(customer_id=customer_id, password=password)
        except Customer.DoesNotExist as exc:
            raise CommandError(f"no customer {customer_id}") from exc
        self.stdout.write(f"customer {customer_id} can sign in at /account/")
