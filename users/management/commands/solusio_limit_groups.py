"""`manage.py solusio_limit_groups [--default ID]`: mirror SolusIO's limit groups."""

from typing import Any

from django.core.management.base import CommandError, CommandParser

from solusio.commands import SolusIOCommand
from users import services
from users.models import LimitGroup, SolusioDefaults


class Command(SolusIOCommand):
    help = "Mirror SolusIO's limit groups (Step 5); --default ID picks the one for new customers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--default", type=int, help="limit group id for new customers")

    def handle(self, *args: Any, default: int | None = None, **options: Any) -> None:
        groups = services.mirror_limit_groups()
        if default is not None:
            group = LimitGroup.objects.filter(pk=default, in_solusio=True).first()
            if group is None:
                raise CommandError(f"SolusIO has no limit group {default}")
            services.set_default_limit_group(limit_group=group)
        chosen = SolusioDefaults.load().default_limit_group_id
        for group in groups:
            mark = " (default)" if group.pk == chosen else ""
            self.stdout.write(f"{group.pk}\t{group.name}{mark}")
