from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "payments"

    def ready(self) -> None:
        # Stripe's admin pages, beside whatever payments/admin.py registers.
        from django.core import checks

        from payments import stripe_admin  # noqa: F401
        from payments.checks import check_stripe_settings

        checks.register(check_stripe_settings)
        # The bank statements' admin lives beside their code (payments/bank/).
        from payments.bank import admin  # noqa: F401
