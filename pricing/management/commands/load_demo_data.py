"""manage.py load_demo_data: the seed's currencies, plans, taxes and two customers."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pricing import imports


class Command(BaseCommand):
    help = (
        f"Import the demo data ({imports.DEMO_DATA_PATH.name}): USD/EUR/GBP, the four Step 2 "
        "plans, a 5% discount, City and State tax, customers 1 and 2. Safe to run again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = imports.import_billing_data(
                data=imports.read_file(path=imports.DEMO_DATA_PATH)
            )
        except imports.ImportFailed as exc:
            raise CommandError(str(exc)) from exc
        for line in result.summary_lines():
            self.stdout.write(line)
