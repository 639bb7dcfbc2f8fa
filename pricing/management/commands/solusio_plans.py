"""`manage.py solusio_plans [--push] [--plan ID ...]`: mirror plans, show or push prices."""

from typing import Any

from django.core.management.base import CommandParser

from pricing import plan_sync
from solusio.commands import SolusIOCommand


class Command(SolusIOCommand):
    help = (
        "Mirror SolusIO's plans and show where SolusIO and the price book disagree; "
        "--push sends the price book's tokens per hour/month (PUT /plans/{id}, Step 3)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--push", action="store_true", help="push the price book's prices")
        parser.add_argument("--plan", type=int, action="append", help="only this plan id")

    def handle(
        self, *args: Any, push: bool = False, plan: list[int] | None = None, **o: Any
    ) -> None:
        plans = plan_sync.mirror_plans()
        self.stdout.write(f"{len(plans)} plans in SolusIO")
        if push:
            pushed = plan_sync.push_plan_prices(plan_ids=plan)
            self.stdout.write(f"pushed the price book's prices of {len(pushed)} plans")
        found = plan_sync.disagreements()
        for item in found:
            self.stdout.write(str(item))
        if not found:
            self.stdout.write("SolusIO and the price book agree")
