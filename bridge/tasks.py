"""Housekeeping tasks of the bridge itself."""

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "bridge:heartbeat"


@shared_task(name="bridge.tasks.heartbeat", ignore_result=True)
def heartbeat() -> str:
    """Beat sends this every minute; a worker running it proves broker, worker and beat
    are alive. /healthz reports its age."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_KEY, now, timeout=None)
    return now
