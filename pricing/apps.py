from django.apps import AppConfig


class PricingConfig(AppConfig):
    name = "pricing"

    def ready(self) -> None:
        from pricing import signals  # noqa: F401  (cache invalidation hooks)
