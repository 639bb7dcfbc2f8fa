"""What the Celery broker can tell about its queues."""

from django.conf import settings


def backlog(queue: str | None = None) -> int | None:
    """Messages waiting in `queue` (the default queue when None); None when the broker
    cannot tell (it is down, or its transport does not count)."""
    from amqp.exceptions import ChannelError

    from bridge.celery import app

    name = queue or app.conf.task_default_queue or settings.SOLUSIO_SYNC_QUEUE
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            declared = conn.default_channel.queue_declare(queue=name, passive=True)
            return int(declared.message_count)
    except ChannelError:
        return 0  # no such queue yet: nothing is waiting
    except Exception:  # noqa: BLE001 - broker down or no such query: the caller decides
        return None
