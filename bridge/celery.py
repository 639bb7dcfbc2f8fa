"""The Celery application: broker and schedule come from Django settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridge.settings")

app = Celery("bridge")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The request id's Celery signal handlers, in every process that sends or runs tasks.
import bridge.logs  # noqa: E402, F401
