from django.apps import AppConfig


class SolusioConfig(AppConfig):
    name = "solusio"
    verbose_name = "SolusIO"
