"""`manage.py set_customer_password ID`: a login for the customer pages (/account/)."""

import getpass
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from users import passwords, services
from users.models import Customer


class Command(BaseCommand):
    help = "Set the password a customer signs in to /account/ with (e-mail + password)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("customer_id", type=int)
        parser.add_argument("--password", help="default: asked for (never echoed)")

    def handle(self, *args: Any, customer_id: int, password: str | None, **o: Any) -> None:
        password = password or getpass.getpass("Password: ")
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is None:
            raise CommandError(f"no customer {customer_id}")
        try:
            # The same rules and the same login (or stand-in) as the admin's page.
            validate_password(password, passwords.portal_user_for(customer))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        services.set_customer_password(customer_id=customer_id, password=password)
        self.stdout.write(f"customer {customer_id} can sign in at /account/")
