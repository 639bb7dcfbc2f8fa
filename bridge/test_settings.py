"""Settings for the test suite: the machine's real PostgreSQL and Redis (overridable)."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("PRICING_API_TOKEN", "test-pricing-token")
# Production mode (DEBUG off) refuses to start without a key; subprocesses inherit this one.
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production")

from bridge.settings import *  # noqa: F403
from bridge.settings import CACHES

# Parallel test workers share one Redis database: keep their keys apart.
CACHES["default"]["KEY_PREFIX"] = "test-" + os.environ.get("PYTEST_XDIST_WORKER", "main")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
