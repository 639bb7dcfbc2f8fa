"""Print the price book: the conversion scheme (Step 1) and the plans table (Step 2)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pricing import pricebook

RENDERERS = {
    "table": pricebook.render_table,
    "csv": pricebook.render_csv,
    "json": pricebook.render_json,
}


class Command(BaseCommand):
    help = (
        "Print the conversion scheme (price of 1, 10, 100, 1,000 and 10,000 tokens in every "
        "currency) and the plans table (tokens per hour, aggregated 31-day month, the "
        "suggested round monthly price, the plan's tokens per month, with their money in one "
        "currency). Formats: 'table' for people (thousands separators, currency prefixes); "
        '\'json\' as {"currency", "conversion": [...], "plans": [...]}; \'csv\' as ONE CSV '
        "whose 'section' column is 'conversion' (one row per token amount and currency: "
        "currency, tokens, price) or 'plan' (one row per plan: plan_id, plan_name and the "
        "figures); cells that do not apply to a section are empty. JSON and CSV carry money "
        "as exact decimal strings."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=sorted(RENDERERS), default="table")
        parser.add_argument(
            "--currency",
            help="ISO code of the plans table's currency (default: USD if present, else the "
            "first by code). The conversion scheme lists it first.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            book = pricebook.price_book(currency_code=options["currency"])
        except pricebook.PriceBookError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(RENDERERS[options["format"]](book), ending="")
