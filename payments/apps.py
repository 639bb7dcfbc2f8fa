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
