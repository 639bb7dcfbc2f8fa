from django.apps import AppConfig


class BridgeConfig(AppConfig):
    name = "bridge"
    verbose_name = "Bridge"

    def ready(self) -> None:
        from bridge import checks  # noqa: F401  (registers the system checks)
        from bridge.metrics import connect_celery_signals

        connect_celery_signals()
