from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "payments"

    def ready(self) -> None:
        # The bank statements' admin lives beside their code (payments/bank/).
        from payments.bank import admin  # noqa: F401
