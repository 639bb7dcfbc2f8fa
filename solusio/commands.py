"""The base of management commands that talk to SolusIO."""

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

NOT_CONFIGURED_HINT = (
    "Set them in the environment; with the demo daemon (bin/run) running, `bin/manage` runs "
    "a command against its local SolusIO simulator."
)


class SolusIOCommand(BaseCommand):
    """A missing SolusIO configuration ends the command with one clear line, not a
    traceback."""

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except ImproperlyConfigured as exc:
            raise CommandError(f"{exc}. {NOT_CONFIGURED_HINT}") from exc
