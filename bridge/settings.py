"""Settings for solusio-billing-bridge, read from the environment (DESIGN §7).

Every value has a default that is safe for the embedded run (SQLite, filesystem broker,
file cache, local SolusIO simulator). Production (DJANGO_DEBUG=0, the default) refuses to
start without DJANGO_SECRET_KEY and PRICING_API_TOKEN (bin/embedded-env sets the demo's);
`manage.py check --deploy` flags the rest. A malformed value (a bad URL, "maybe" for a
boolean) stops the process at start-up.
"""

import sys
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("BRIDGE_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite file, file cache, embedded broker

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# A development key (DJANGO_DEBUG=1 only): production refuses to start on it (end of file).
INSECURE_DEFAULT_SECRET_KEY = "insecure-embedded-default-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=INSECURE_DEFAULT_SECRET_KEY)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as static files: no CDN
    "django_filters",
    "axes",
    "bridge",
    "pricing",
    "users",
    "usage",
    "payments",
    "solusio",
]

MIDDLEWARE = [
    "bridge.logs.RequestIdMiddleware",
    "bridge.metrics.ResponseClassMiddleware",  # early: it sees every response, 500s too
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Staff pages (admin) and the portal's sign-in follow the browser's language; a signed-in
    # customer's pages their own (users.decorators.customer_required).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "bridge.security.StaffApiThrottleMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "bridge.urls"
WSGI_APPLICATION = "bridge.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'bridge.sqlite3'}"),
}
# Keep PostgreSQL connections open between requests; SQLite ignores this.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Worker, beat and web share the file: wait for locks instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# Prefix of the bridge's keys in Redis (Django's cache and the pricing answer cache).
CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="bridge")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }
else:
    # A file cache is shared by web, worker and beat, so an invalidation made in one
    # process is seen by the others (local memory would not be).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Customers read invoices, e-mails and the portal in their own language (Customer.language);
# another language is a locale/<code>/LC_MESSAGES/django.po and a line here (README).
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve admin assets straight from the apps when collectstatic has not run (embedded run).
WHITENOISE_USE_FINDERS = True

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out account or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "admin:login"  # staff; the customer pages (/account/) use their own login

# --- The bridge's own settings -------------------------------------------------------
# Shared secret SolusIO sends as `token` to GetTokenPricing (Step 7). Empty = not required,
# which `check --deploy` flags.
PRICING_API_TOKEN = env.str("PRICING_API_TOKEN", default="")
# How long a GetTokenPricing answer may be served from cache. Changes invalidate at once;
# this only bounds the life of an entry nobody asks for again.
PRICING_CACHE_TTL = env.int("PRICING_CACHE_TTL", default=3600)
# Answers each web process keeps in memory in front of Redis (about 400 bytes each), valid
# while Redis's client-side tracking confirms nothing changed. 0 turns the first level off.
PRICING_LOCAL_CACHE_SIZE = env.int("PRICING_LOCAL_CACHE_SIZE", default=100_000)
# A new web worker copies the shared cache's answers into its own in the background, so a
# deploy or a recycled worker does not pay one Redis round trip per customer.
PRICING_LOCAL_CACHE_PREFILL = env.bool("PRICING_LOCAL_CACHE_PREFILL", default=True)
# Largest request body GetTokenPricing reads; SolusIO sends three short fields.
PRICING_MAX_BODY_BYTES = env.int("PRICING_MAX_BODY_BYTES", default=4096)

SOLUSIO_API_URL = env.str("SOLUSIO_API_URL", default="")
SOLUSIO_API_TOKEN = env.str("SOLUSIO_API_TOKEN", default="")
SOLUSIO_VERIFY_TLS = env.bool("SOLUSIO_VERIFY_TLS", default=True)
SOLUSIO_LOGIN_URL_TEMPLATE = env.str("SOLUSIO_LOGIN_URL_TEMPLATE", default="")
# The billing usage list (Step 10) is not in any public source (DESIGN §4): its route and
# period filter names are settings, so a SolusIO that differs needs no code change.
SOLUSIO_USAGE_PATH = env.str("SOLUSIO_USAGE_PATH", default="/usage")
# Items asked for per page of every list (`per_page`): lower it if SolusIO caps it lower.
SOLUSIO_PER_PAGE = env.int("SOLUSIO_PER_PAGE", default=100)
if SOLUSIO_PER_PAGE < 1:
    raise ImproperlyConfigured(f"SOLUSIO_PER_PAGE must be at least 1, not {SOLUSIO_PER_PAGE}")
SOLUSIO_USAGE_FILTER_FROM = env.str("SOLUSIO_USAGE_FILTER_FROM", default="filter[date_from]")
SOLUSIO_USAGE_FILTER_TO = env.str("SOLUSIO_USAGE_FILTER_TO", default="filter[date_to]")
BILLING_TIMEZONE = env.str("BILLING_TIMEZONE", default="UTC")
# The close's build is cut into shards of this many customers (usage/workflow.py): each a
# task on CLOSE_QUEUE, which every worker host consumes.
CLOSE_SHARD_SIZE = env.int("CLOSE_SHARD_SIZE", default=2000)
CLOSE_QUEUE = env.str("CLOSE_QUEUE", default="close")
# The pull is cut into shards too, so every worker fetches and stores at once: this many
# `/usage` pages each (when SolusIO says how many pages there are: meta.last_page), or
# this many observed servers each (USAGE_SOURCE=observed).
CLOSE_PULL_PAGES = env.int("CLOSE_PULL_PAGES", default=100)
CLOSE_PULL_SERVERS = env.int("CLOSE_PULL_SERVERS", default=10_000)
# A stage of a submitted close renews its claim as it progresses (every batch); one not
# renewed for this long lost its worker, and the sweep hands it to another.
CLOSE_LEASE_SECONDS = env.int("CLOSE_LEASE_SECONDS", default=120)
# A shard that fails this many times fails its close (staff see its error and re-run it).
CLOSE_SHARD_MAX_ATTEMPTS = env.int("CLOSE_SHARD_MAX_ATTEMPTS", default=3)
# A failed stage of a close waits (capped, jittered backoff) before it is tried again;
# the pull's wait grows to an hour (SolusIO may be down for a while).
CLOSE_RETRY_BASE = env.float("CLOSE_RETRY_BASE", default=30.0)
CLOSE_RETRY_MAX = env.float("CLOSE_RETRY_MAX", default=3600.0)
_CLOSE_COUNTS = {
    "CLOSE_SHARD_SIZE": CLOSE_SHARD_SIZE,
    "CLOSE_PULL_PAGES": CLOSE_PULL_PAGES,
    "CLOSE_PULL_SERVERS": CLOSE_PULL_SERVERS,
    "CLOSE_LEASE_SECONDS": CLOSE_LEASE_SECONDS,
    "CLOSE_SHARD_MAX_ATTEMPTS": CLOSE_SHARD_MAX_ATTEMPTS,
}
if min(_CLOSE_COUNTS.values()) < 1:
    raise ImproperlyConfigured(f"{', '.join(_CLOSE_COUNTS)} must each be at least 1")
# Customers per build transaction.
CLOSE_BUILD_BATCH = env.int("CLOSE_BUILD_BATCH", default=500)
if CLOSE_BUILD_BATCH < 1:
    raise ImproperlyConfigured(f"CLOSE_BUILD_BATCH must be at least 1, not {CLOSE_BUILD_BATCH}")
# Where the close takes usage from (DESIGN §4): SolusIO's `/usage` (`usage_api`), our own
# observations of `/servers` (`observed`), or `/usage` checked against the observations
# (`both`, which also falls back to observed usage when `/usage` is unusable).
USAGE_SOURCE = env.str("USAGE_SOURCE", default="usage_api")
if USAGE_SOURCE not in ("usage_api", "observed", "both"):
    raise ImproperlyConfigured(
        f"USAGE_SOURCE must be usage_api, observed or both, not {USAGE_SOURCE!r}"
    )
# Seconds between observation polls of `/servers`: observed hours may exceed the truth by
# up to one interval per segment.
SOLUSIO_OBSERVE_INTERVAL = env.int("SOLUSIO_OBSERVE_INTERVAL", default=300)
if SOLUSIO_OBSERVE_INTERVAL < 10:
    raise ImproperlyConfigured("SOLUSIO_OBSERVE_INTERVAL must be at least 10 seconds")
# The bridge's own public address, as SolusIO reaches it: the doctor checks that SolusIO's
# billing integration points at BRIDGE_PUBLIC_URL + /api/solusio (Step 7).
BRIDGE_PUBLIC_URL = env.str("BRIDGE_PUBLIC_URL", default="")
# The billing integration type for custom billing in SolusIO's settings (assumed value,
# DESIGN §4: the driver's url and token live under drivers.whmcs).
SOLUSIO_BILLING_INTEGRATION_TYPE = env.str("SOLUSIO_BILLING_INTEGRATION_TYPE", default="custom")
# The key under billing_integration.drivers that holds the bridge's URL and token (assumed
# `whmcs`, the only driver the SDK knows); `solusio_doctor --fix` reports what SolusIO kept.
SOLUSIO_BILLING_DRIVER = env.str("SOLUSIO_BILLING_DRIVER", default="whmcs")
# Role and language of the SolusIO users the bridge creates; empty = SolusIO's defaults.
SOLUSIO_USER_ROLE_IDS = [int(r) for r in env.list("SOLUSIO_USER_ROLE_IDS", default=[])]
SOLUSIO_USER_LANGUAGE_ID = env.int("SOLUSIO_USER_LANGUAGE_ID", default=0) or None
# The client's own retries inside one delivery (connection errors, 5xx, 429).
SOLUSIO_RETRY_MAX_ATTEMPTS = env.int("SOLUSIO_RETRY_MAX_ATTEMPTS", default=3)
SOLUSIO_RETRY_BASE_DELAY = env.float("SOLUSIO_RETRY_BASE_DELAY", default=0.5)
SOLUSIO_RETRY_MAX_DELAY = env.float("SOLUSIO_RETRY_MAX_DELAY", default=10.0)
SOLUSIO_CONNECT_TIMEOUT = env.float("SOLUSIO_CONNECT_TIMEOUT", default=5.0)
SOLUSIO_READ_TIMEOUT = env.float("SOLUSIO_READ_TIMEOUT", default=30.0)
# Attempts per SolusIO call inside a user-sync delivery (a 5xx or a dropped connection is
# tried again after SOLUSIO_RETRY_BASE_DELAY-sized backoff; a 429 goes straight back to the
# outbox, which honours its Retry-After); after that the outbox retries.
SOLUSIO_SYNC_CALL_ATTEMPTS = env.int("SOLUSIO_SYNC_CALL_ATTEMPTS", default=2)
# When a delivery still fails transiently, the outbox tries again after a capped,
# growing delay (seconds); records are never dropped for being transiently undeliverable.
SOLUSIO_SYNC_RETRY_BASE = env.float("SOLUSIO_SYNC_RETRY_BASE", default=5.0)
SOLUSIO_SYNC_RETRY_MAX = env.float("SOLUSIO_SYNC_RETRY_MAX", default=600.0)
# The sweep re-sends records older than this that are still undelivered (a lost message,
# a broker or worker that was down).
SOLUSIO_SYNC_SWEEP_AFTER = env.float("SOLUSIO_SYNC_SWEEP_AFTER", default=30.0)
# The sweep stands back while more messages than this wait in the sync queue.
SOLUSIO_SYNC_SWEEP_MAX_BACKLOG = env.int("SOLUSIO_SYNC_SWEEP_MAX_BACKLOG", default=100)
# Customers per delivery task when a transaction changes many (imports, bulk edits).
SOLUSIO_SYNC_TASK_BATCH = env.int("SOLUSIO_SYNC_TASK_BATCH", default=25)
# Queue of the user-sync tasks (tests give each worker a queue of its own).
SOLUSIO_SYNC_QUEUE = env.str("SOLUSIO_SYNC_QUEUE", default="celery")
# `manage.py check` runs the live SolusIO checks only when asked (`--tag solusio`), so a
# SolusIO outage never blocks migrate or runserver; True runs them with every check.
SOLUSIO_CHECKS_ALWAYS = env.bool("SOLUSIO_CHECKS_ALWAYS", default=False)

# --- E-mail ----------------------------------------------------------------------------
# One URL through django-environ: smtp://user:password@host:25, smtp+tls://…:587,
# smtp+ssl://…:465; consolemail:// (the default, development only) prints each e-mail to
# the web process's output instead of sending it.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
if EMAIL_CONFIG["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend":
    # Ours prints attachments by name and size: Django's put each invoice PDF, in base64,
    # into the worker's log.
    EMAIL_CONFIG["EMAIL_BACKEND"] = "bridge.console.EmailBackend"
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="billing@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Seconds a customer's "forgot password" link stays valid (Django's setting; the portal's
# reset is the only password reset the bridge offers).
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3600)
# Seconds an SMTP connection may take (Django's default is to wait for ever, which would
# hold an invoice e-mail task and its row lock as long as a dead server keeps the socket).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
# Invoice e-mails (usage.emails): attempts before a delivery is marked failed for staff,
# the growing delay between them (seconds, jittered), how old an undelivered one must be
# before the beat sweep re-sends it, and invoices per delivery task.
INVOICE_EMAIL_MAX_ATTEMPTS = env.int("INVOICE_EMAIL_MAX_ATTEMPTS", default=6)
INVOICE_EMAIL_RETRY_BASE = env.float("INVOICE_EMAIL_RETRY_BASE", default=60.0)
INVOICE_EMAIL_RETRY_MAX = env.float("INVOICE_EMAIL_RETRY_MAX", default=3600.0)
INVOICE_EMAIL_SWEEP_AFTER = env.float("INVOICE_EMAIL_SWEEP_AFTER", default=120.0)
# The sweep stands back while more messages than this wait in the queue (workers behind).
INVOICE_EMAIL_SWEEP_MAX_BACKLOG = env.int("INVOICE_EMAIL_SWEEP_MAX_BACKLOG", default=100)
INVOICE_EMAIL_TASK_BATCH = env.int("INVOICE_EMAIL_TASK_BATCH", default=50)
# Payment reminders (payments.reminders): the same knobs for the dunning schedule's e-mails.
REMINDER_EMAIL_MAX_ATTEMPTS = env.int("REMINDER_EMAIL_MAX_ATTEMPTS", default=6)
REMINDER_EMAIL_RETRY_BASE = env.float("REMINDER_EMAIL_RETRY_BASE", default=60.0)
REMINDER_EMAIL_RETRY_MAX = env.float("REMINDER_EMAIL_RETRY_MAX", default=3600.0)
REMINDER_EMAIL_SWEEP_AFTER = env.float("REMINDER_EMAIL_SWEEP_AFTER", default=120.0)
REMINDER_EMAIL_SWEEP_MAX_BACKLOG = env.int("REMINDER_EMAIL_SWEEP_MAX_BACKLOG", default=100)
REMINDER_EMAIL_TASK_BATCH = env.int("REMINDER_EMAIL_TASK_BATCH", default=50)

# --- Online payment (Stripe, payments/stripe_pay.py) -----------------------------------
# Off unless both secrets are set: no Pay button, no pay link, the webhook answers 404.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Stripe's API by default; tests and the demo point it at payments/fake_stripe.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
# Seconds a webhook's signed timestamp may be old (Stripe's own default): older is a replay.
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)
# Seconds one call to Stripe may take, and the client's own retries (same idempotency key).
STRIPE_TIMEOUT = env.float("STRIPE_TIMEOUT", default=30.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# Automatic collection: days after a declined off-session charge to try again; one more
# attempt than there are entries. The default retries at days 1, 4 and 11, before dunning's
# default 14-day suspension.
STRIPE_COLLECT_RETRY_DAYS = [
    int(d) for d in env.list("STRIPE_COLLECT_RETRY_DAYS", default=["1", "3", "7"])
]

# --- Celery ----------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    # Embedded broker: kombu's filesystem transport needs no server, and a real worker
    # and beat run on it (this is not eager mode).
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "bridge.tasks.heartbeat", "schedule": 60.0},
    # Users (issue 4): deliver what the broker lost; compare SolusIO with us daily.
    "users-sweep-outbox": {"task": "users.tasks.sweep_outbox", "schedule": 60.0},
    "users-reconcile": {
        "task": "users.tasks.reconcile",
        "schedule": crontab(hour=3, minute=17),
    },
    # Mirror SolusIO's limit groups (Step 5) and plans (Step 3) hourly, so what staff pick
    # from and the "SolusIO = price book" column stay current without a button press.
    "users-mirror-limit-groups": {
        "task": "users.tasks.mirror_limit_groups",
        "schedule": crontab(minute=13),
    },
    "pricing-mirror-plans": {"task": "pricing.tasks.mirror_plans", "schedule": crontab(minute=43)},
    # Usage (issue 5): hourly; the task closes last month (in BILLING_TIMEZONE) unless it is
    # closed already, so it runs in the first hour of the 1st there and catches up after an
    # outage.
    "usage-close-previous-period": {
        "task": "usage.tasks.close_previous_period",
        "schedule": crontab(minute=7),
    },
    # A submitted close's stages whose worker died or whose message was lost.
    "usage-close-sweep": {"task": "usage.tasks.close_sweep", "schedule": 60.0},
    "usage-dunning-sweep": {"task": "usage.tasks.dunning_sweep", "schedule": crontab(minute=37)},
    # Observed metering (DESIGN §4): the servers' intervals, one row per change.
    "usage-observe-servers": {
        "task": "usage.tasks.observe_servers",
        "schedule": float(SOLUSIO_OBSERVE_INTERVAL),
    },
    "usage-month-to-date": {
        "task": "usage.tasks.refresh_month_to_date",
        "schedule": crontab(minute=23),
    },
    # Invoice e-mails whose message the broker lost, or whose retry is due.
    "usage-invoice-email-sweep": {"task": "usage.tasks.sweep_invoice_emails", "schedule": 60.0},
    # Stripe (issue 14 §2): webhook events whose task the broker lost, and automatic
    # collections whose retry is due. Both do nothing while Stripe is off.
    "payments-stripe-sweep": {"task": "payments.tasks.stripe_sweep", "schedule": 300.0},
    # Payment reminders (the dunning sweep writes them) whose message was lost or is due.
    "payments-reminder-sweep": {"task": "payments.tasks.sweep_reminders", "schedule": 60.0},
}

# --- Metrics (bridge.metrics) --------------------------------------------------------
# /metrics answers a bearer token (Authorization: Bearer <METRICS_TOKEN>), or, with no
# token and METRICS_INTERNAL_ONLY=1, direct requests from private or loopback addresses that
# did not come through the reverse proxy. With neither it answers 403 (DEBUG: open).
# Multi-process counting (gunicorn, Celery) is PROMETHEUS_MULTIPROC_DIR, read by
# prometheus_client itself from the environment.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_INTERNAL_ONLY = env.bool("METRICS_INTERNAL_ONLY", default=False)

# --- REST API --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "bridge.api_keys.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["bridge.api.StaffModelPermissions"],
    "DEFAULT_SCHEMA_CLASS": "bridge.api_schema.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "bridge.parsers.JSONParser",  # DRF's, with too deeply nested JSON a 400
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Lists declare a `filterset_class`; a bad query value is a 400 naming the parameter.
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "bridge.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "solusio-billing-bridge staff API",
    "DESCRIPTION": "Prices, customers and plans of the SolusIO custom-billing bridge.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema documents the staff API: staff holding at least one of its permissions.
    "SERVE_PERMISSIONS": ["bridge.api.SchemaReaders"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Invoices and customers both have a `status` with its own choices.
    "ENUM_NAME_OVERRIDES": {
        "InvoiceStatusEnum": "usage.models.InvoiceStatus",
        "ReminderStateEnum": "bridge.models.DeliveryState",
        "CloseRunStateEnum": "usage.models.CloseRunState",
        "CloseShardStateEnum": "usage.models.CloseShardState",
    },
    # /api/v1/docs/ (Swagger UI) and /api/v1/docs/redoc/ load their scripts from this
    # server's static files (whitenoise), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Every record carries the request id (bridge.logs) that follows a change from the web
# request into the tasks it enqueues. json: one object per line, for a log shipper.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "bridge.logs.RequestIdFilter"},
        "skip_unavailable": {"()": "bridge.outage.SkipUnavailable"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "bridge.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # 503s are logged once, by bridge.outage (one line each, a summary per minute).
        "django.request": {"filters": ["skip_unavailable"]},
        # fpdf2 subsets the invoice font through fontTools, which logs each step at INFO.
        "fontTools": {"level": "WARNING"},
        # stripe logs request and response bodies at DEBUG (a PaymentIntent's client_secret):
        # never below INFO, whatever LOG_LEVEL says.
        "stripe": {"level": "INFO"},
    },
}
# json: workers log through LOGGING too, instead of Celery's own plain format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT == "plain"

# Error reports (off unless set): no personal data, no tracing; tagged with the request id.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    from bridge.logs import init_sentry

    init_sentry(SENTRY_DSN, environment=env.str("SENTRY_ENVIRONMENT", default="") or None)

# --- Brute force -------------------------------------------------------------------------
# Proxies in front of the bridge whose TRUSTED_PROXY_HEADER we believe (0: none, the client
# address is REMOTE_ADDR; 1: e.g. the compose file's reverse proxy). More than the real
# number lets any client choose its own address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
TRUSTED_PROXY_HEADER = env.str("TRUSTED_PROXY_HEADER", default="X-Forwarded-For")
# Portal and admin sign-in (django-axes): after LOGIN_FAILURE_LIMIT failures for one
# account, or from one address, sign-in is refused (429) for LOGIN_LOCKOUT_MINUTES.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one alone locks
AXES_CLIENT_IP_CALLABLE = "bridge.security.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # successful sign-ins are not kept; failures are
AXES_LOCKOUT_TEMPLATE = "bridge/locked_out.html"
# Failures are logged with the client address; the username stays masked (people type
# passwords into it).
AXES_SENSITIVE_PARAMETERS = ["username"]
# The staff API (401s: a wrong or missing API key) and GetTokenPricing (wrong tokens):
# failures per client address within THROTTLE_WINDOW_SECONDS before it gets 429s.
STAFF_API_FAILURE_LIMIT = env.int("STAFF_API_FAILURE_LIMIT", default=20)
PRICING_TOKEN_FAILURE_LIMIT = env.int("PRICING_TOKEN_FAILURE_LIMIT", default=20)
THROTTLE_WINDOW_SECONDS = env.int("THROTTLE_WINDOW_SECONDS", default=900)

# --- HTTPS ---------------------------------------------------------------------------------
# Behind https (BRIDGE_PUBLIC_URL says so), cookies go over https only and browsers are told
# to use nothing else (HSTS).
PUBLIC_URL_IS_HTTPS = BRIDGE_PUBLIC_URL.lower().startswith("https://")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=PUBLIC_URL_IS_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int(
    "SECURE_HSTS_SECONDS", default=31_536_000 if PUBLIC_URL_IS_HTTPS else 0
)
if TRUSTED_PROXY_COUNT > 0:
    # The proxy terminates TLS; its header tells Django the request came over https (which
    # is when SecurityMiddleware sends HSTS).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Production refuses to start without its secrets --------------------------------------
if not DEBUG:
    _refusals = []
    if SECRET_KEY == INSECURE_DEFAULT_SECRET_KEY:
        _refusals.append(
            "DJANGO_SECRET_KEY is not set: production (DJANGO_DEBUG=0) will not run on the "
            "public embedded key; set it to a long random value."
        )
    if not PRICING_API_TOKEN:
        _refusals.append(
            "PRICING_API_TOKEN is not set: production (DJANGO_DEBUG=0) will not answer "
            "GetTokenPricing without a token; set it and the same value in SolusIO (Step 7)."
        )
    if _refusals:
        sys.exit("\n".join(_refusals))
