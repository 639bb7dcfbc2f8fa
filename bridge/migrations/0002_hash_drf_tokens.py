"""DRF's plain tokens (rest_framework.authtoken, no longer installed) become hashed API keys
that keep working with the same header; the plain keys are then erased."""

import hashlib
from datetime import UTC, datetime
from typing import Any

from django.db import migrations
from django.utils import timezone

# The table of an app that is no longer installed: no model to take the name from.
DRF_TOKEN_TABLE = "authtoken_token"


def hash_drf_tokens(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if DRF_TOKEN_TABLE not in connection.introspection.table_names():
        return
    api_key = apps.get_model("bridge", "ApiKey")
    table = connection.ops.quote_name(DRF_TOKEN_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {table}")
        rows = cursor.fetchall()
        for key, user_id, created in rows:
            if not isinstance(created, datetime):
                created = timezone.now()
            elif timezone.is_naive(created):
                created = created.replace(tzinfo=UTC)
            api_key.objects.create(
                user_id=user_id,
                name="DRF token (migrated)",
                prefix=key[:8],
                digest=hashlib.sha256(key.encode()).hexdigest(),
                created_at=created,
            )
        cursor.execute(f"DELETE FROM {table}")


class Migration(migrations.Migration):
    dependencies = [("bridge", "0001_initial")]

    operations = [migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop)]
