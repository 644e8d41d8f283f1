"""Conveyor settings: every deployment value comes from the environment or `.env`."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.env import check_deployment, mailer, redis_connection

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Deployment -------------------------------------------------------------------------------

CONVEYOR_ENV = env.str("CONVEYOR_ENV", default="production")
_local = CONVEYOR_ENV != "production"

DEBUG = env.bool("DEBUG", default=CONVEYOR_ENV == "development")
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if _local else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

_problems = check_deployment(
    environment=CONVEYOR_ENV,
    debug=DEBUG,
    secret_key=SECRET_KEY,
    allowed_hosts=ALLOWED_HOSTS,
    metrics_token=env.str("CONVEYOR_METRICS_TOKEN", default=""),
)
if _problems:
    raise ImproperlyConfigured("Conveyor cannot start:\n  - " + "\n  - ".join(_problems))
if not SECRET_KEY:
    SECRET_KEY = "conveyor-local-development-key-not-for-production"

if not _local:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)

# --- Applications -----------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "tenants",
    "jobs",
    "communications",
    "reports",
    "workflows",
    "alerts",
    "django_rq",  # after jobs, whose `rqworker` command extends django-rq's
    "demo",
]

MIDDLEWARE = [
    # A request carrying W3C `traceparent` continues its trace into the jobs it enqueues.
    "jobs.tracing.TraceContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ApiErrorsAsJson",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # `Conveyor-Status-Words: legacy`: the previous release's status words, for one release.
    "jobs.api.common.legacy_status_words",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Data -------------------------------------------------------------------------------------

DATABASES = {
    "default": env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/conveyor"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# DATABASE_POOL_SIZE > 0: each process shares at most that many connections among its threads
# (psycopg's pool; a job thread borrows one for the job). 0: each thread keeps its own.
DATABASE_POOL_SIZE = env.int("DATABASE_POOL_SIZE", default=0)
if DATABASE_POOL_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django requires it with a pool
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        "timeout": 60,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(VAR_DIR / "static"))
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))

# --- Email ------------------------------------------------------------------------------------

MAILERS = {
    "default": mailer(
        env.email_url("EMAIL_URL", default="consolemail://" if _local else "smtp://localhost:25")
    )
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Conveyor <noreply@localhost>")

# --- SMS and WhatsApp -------------------------------------------------------------------------

# The provider of each channel: console (prints), memory (a Redis list, for tests), http (POSTs
# JSON to URL with the Authorization header given) or a dotted path to a provider class.
CONVEYOR_MESSAGING = {
    channel: {
        "PROVIDER": env.str(f"{prefix}_PROVIDER", default="console"),
        "URL": env.str(f"{prefix}_HTTP_URL", default=""),
        "AUTH_HEADER": env.str(f"{prefix}_HTTP_AUTH_HEADER", default=""),
        "FROM": env.str(f"{prefix}_FROM", default=""),
        "TIMEOUT": env.float(f"{prefix}_HTTP_TIMEOUT", default=10.0),
    }
    for channel, prefix in (("sms", "SMS"), ("whatsapp", "WHATSAPP"))
}
# Keys that encrypt tenants' provider credentials (Fernet keys, comma-separated, newest first:
# the first encrypts, every one decrypts, `rotate_sender_credentials` re-encrypts with the first).
# Unset, one key is derived from SECRET_KEY: fine locally, set your own in production.
CONVEYOR_SECRET_KEYS = env.list("CONVEYOR_SECRET_KEYS", default=[])
# Where this deployment is reached, e.g. https://conveyor.example.com: links in emails are made
# absolute with it, and providers call back there (delivery receipts). Unset in production,
# receipts are not asked for and links stay relative.
CONVEYOR_PUBLIC_URL = env.str(
    "CONVEYOR_PUBLIC_URL", default="http://127.0.0.1:8000" if _local else ""
).rstrip("/")
# Seconds a tenant's provider (Twilio, Meta, an email API) may take to answer one send.
CONVEYOR_SENDER_TIMEOUT = env.float("CONVEYOR_SENDER_TIMEOUT", default=10.0)
# Where boto3 calls AWS for Amazon SES senders (SES v2 sends, SNS subscription confirmations)
# instead of AWS's own endpoints: a local stand-in such as LocalStack. A deployment setting only;
# a tenant never chooses where its credentials go. Empty: AWS.
CONVEYOR_AWS_ENDPOINT_URL = env.str("CONVEYOR_AWS_ENDPOINT_URL", default="")
# Members a notifications job writes per transaction when it notifies a tenant's members.
CONVEYOR_NOTIFY_BATCH_SIZE = env.int("CONVEYOR_NOTIFY_BATCH_SIZE", default=500)
# Recipients per campaign batch job; batches run in parallel on the channel's queue.
CONVEYOR_CAMPAIGN_BATCH_SIZE = env.int("CONVEYOR_CAMPAIGN_BATCH_SIZE", default=500)
# Provider calls a campaign batch job makes at once (threads; claims and marks stay in order in
# the job's own thread): a provider that answers in 100 ms then costs 100 ms per window, not per
# send. Cancels are noticed between windows.
CONVEYOR_CAMPAIGN_SEND_CONCURRENCY = env.int("CONVEYOR_CAMPAIGN_SEND_CONCURRENCY", default=20)

# --- Queues -----------------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
REDIS_CONNECTION = redis_connection(REDIS_URL)

# The queue table (PRODUCT.md §4): defaults per queue that kinds and tenants override.
# timeout in seconds; workers is how many worker processes production should run for it;
# concurrency is how many of its jobs one worker process runs at once (threads of the default
# ConcurrentWorker; for a forking Worker, which runs one at a time, how many processes `make run`
# starts); rate_limits are per tenant, keyed by the limit name kinds refer to;
# tenant_concurrency caps how many jobs of one tenant run at once on this queue; worker_class is
# what its workers run (default CONVEYOR_WORKER_CLASS: many jobs at once in one process; the
# forking Worker isolates heavy jobs);
# preload lists modules its workers import once at start (with CONVEYOR_PRELOAD's).
CONVEYOR_QUEUES: dict[str, dict] = {
    "notifications": {"timeout": 30, "max_attempts": 3, "workers": 4, "concurrency": 20},
    "email": {
        "timeout": 60,
        "max_attempts": 5,
        "workers": 4,
        "concurrency": 10,
        "rate_limits": {"email": "10/s"},
    },
    "messaging": {
        "timeout": 600,
        "max_attempts": 3,
        "workers": 2,
        "concurrency": 5,
        "rate_limits": {"whatsapp": "12/s", "sms": "10/s"},
    },
    "webhooks": {"timeout": 30, "max_attempts": 10, "workers": 2, "concurrency": 10},
    "default": {"timeout": 180, "max_attempts": 3, "workers": 2, "concurrency": 10},
    "imports": {
        "timeout": 1800,
        "max_attempts": 2,
        "workers": 1,
        "concurrency": 3,
        "tenant_concurrency": 2,
        "worker_class": "jobs.runtime.worker.Worker",
    },
    "reports": {
        "timeout": 600,
        "max_attempts": 3,
        "workers": 1,
        "concurrency": 2,
        "tenant_concurrency": 2,
        "worker_class": "jobs.runtime.worker.Worker",
        "preload": ["weasyprint"],
    },
    "maintenance": {
        "timeout": 1800,
        "max_attempts": 1,
        "workers": 1,
        "concurrency": 1,
        "worker_class": "jobs.runtime.worker.Worker",
    },
}

CONVEYOR_WORKER_CLASS = "jobs.runtime.worker.ConcurrentWorker"

# Each queue is served as RQ sub-queues, one per priority, listened to in this order.
CONVEYOR_PRIORITIES = ["critical", "high", "normal", "low"]
CONVEYOR_RESULT_TTL = env.int("CONVEYOR_RESULT_TTL", default=600)
# A job enqueued outside a transaction commits without waiting for the WAL flush unless true.
CONVEYOR_DURABLE_ENQUEUE = env.bool("CONVEYOR_DURABLE_ENQUEUE", default=True)
# A job's outcome commits only once the WAL is flushed, so a database crash never forgets a
# finished job (which would then run again). False trades that for a faster commit.
CONVEYOR_DURABLE_OUTCOMES = env.bool("CONVEYOR_DURABLE_OUTCOMES", default=True)
CONVEYOR_BACKOFF_BASE = env.float("CONVEYOR_BACKOFF_BASE", default=2.0)
CONVEYOR_BACKOFF_CAP = env.float("CONVEYOR_BACKOFF_CAP", default=3600.0)
# Times a job may put itself back (`ctx.snooze`) without using an attempt; later snoozes count.
CONVEYOR_MAX_SNOOZES = env.int("CONVEYOR_MAX_SNOOZES", default=20)
CONVEYOR_SHUTDOWN_GRACE = env.int("CONVEYOR_SHUTDOWN_GRACE", default=30)
CONVEYOR_WORKER_TTL = env.int("CONVEYOR_WORKER_TTL", default=60)
# A worker refreshes its running job's heartbeat this often; a job whose heartbeat is older
# than that plus the grace belongs to a dead worker and is rescued by the reconciler.
CONVEYOR_HEARTBEAT_SECONDS = env.int("CONVEYOR_HEARTBEAT_SECONDS", default=10)
CONVEYOR_HEARTBEAT_GRACE = env.int("CONVEYOR_HEARTBEAT_GRACE", default=30)
CONVEYOR_PRELOAD = env.list("CONVEYOR_PRELOAD", default=[])
# `manage.py rqworker` runs the worker in a child process it restarts when it dies, settling the
# jobs it was running (jobs.runtime.supervisor); `--no-supervise` or false runs it bare.
CONVEYOR_SUPERVISE = env.bool("CONVEYOR_SUPERVISE", default=True)

# Health (PRODUCT.md §7): a queue may override max_wait_seconds with "max_wait" in its row.
CONVEYOR_HEALTH = {
    "max_wait_seconds": env.int("HEALTH_MAX_WAIT_SECONDS", default=300),
    "failure_rate_degraded": env.float("HEALTH_FAILURE_RATE_DEGRADED", default=0.10),
    "failure_rate_error": env.float("HEALTH_FAILURE_RATE_ERROR", default=0.25),
    "min_jobs_for_failure_rate": env.int("HEALTH_MIN_JOBS", default=5),
    # The reconcile job runs every minute; no completed pass for this long is degraded.
    "reconcile_max_age_seconds": env.int("HEALTH_RECONCILE_MAX_AGE_SECONDS", default=300),
}
# Alerts (docs/alerts.md): the scheduler checks health every check_seconds (0: never) and keeps
# the checks history_days. Workers measure their memory and CPU, their host's load and the free
# space of CONVEYOR_DISK_PATH every CONVEYOR_FIGURES_SECONDS, with their heartbeat.
CONVEYOR_ALERTS = {
    "check_seconds": env.int("ALERTS_CHECK_SECONDS", default=30),
    "history_days": env.int("ALERTS_HISTORY_DAYS", default=7),
}
CONVEYOR_DISK_PATH = env.str("CONVEYOR_DISK_PATH", default="/")
CONVEYOR_FIGURES_SECONDS = env.int("CONVEYOR_FIGURES_SECONDS", default=10)
# Finished jobs and their logs are deleted after this many days (a tenant may override).
CONVEYOR_RETENTION_DAYS = env.int("CONVEYOR_RETENTION_DAYS", default=90)
# `ctx.once` markers older than this are deleted by the clean-up (0: kept for good).
CONVEYOR_ONCE_MARKER_DAYS = env.int("CONVEYOR_ONCE_MARKER_DAYS", default=400)
# cleanup_jobs deletes this many jobs per transaction; it also deletes stored files under these
# prefixes that no row names any more, once they are older than the minimum age (seconds).
CONVEYOR_CLEANUP_BATCH_SIZE = env.int("CONVEYOR_CLEANUP_BATCH_SIZE", default=250)
CONVEYOR_STORED_FILE_PREFIXES = env.list(
    "CONVEYOR_STORED_FILE_PREFIXES", default=["reports/", "exports/", "imports/"]
)
CONVEYOR_STORED_FILE_MIN_AGE = env.int("CONVEYOR_STORED_FILE_MIN_AGE", default=3600)
# When set, /metrics answers only requests with `Authorization: Bearer <token>`.
# What may be chosen through the API and the admin when enqueueing or scheduling: the queues
# here take only the platform's own kinds; the others are shared by every tenant. Operators use
# `manage.py enqueue` for anything else.
CONVEYOR_TENANT_LIMITS = {
    "operator_queues": ["maintenance"],
    "priorities": ["high", "normal", "low"],
    "max_timeout": env.int("CONVEYOR_TENANT_MAX_TIMEOUT", default=3600),
    "max_attempts": env.int("CONVEYOR_TENANT_MAX_ATTEMPTS", default=10),
}
CONVEYOR_METRICS_TOKEN = env.str("CONVEYOR_METRICS_TOKEN", default="")
# /metrics labels per tenant: the top N by backlog, the rest as tenant="other" (or every tenant).
CONVEYOR_METRICS_TOP_TENANTS = env.int("CONVEYOR_METRICS_TOP_TENANTS", default=10)
CONVEYOR_METRICS_ALL_TENANTS = env.bool("CONVEYOR_METRICS_ALL_TENANTS", default=False)
# Reports: the longest period one report covers, and how many days reports and files are kept.
REPORTS_MAX_SPAN_DAYS = env.int("REPORTS_MAX_SPAN_DAYS", default=366)
REPORTS_RETENTION_DAYS = env.int("REPORTS_RETENTION_DAYS", default=90)
# Where people reach this site; makes the links in emails (e.g. report downloads) absolute.
CONVEYOR_BASE_URL = env.str("CONVEYOR_BASE_URL", default="")

# Webhooks (docs/webhooks.md): seconds for connect + read of one POST; the delay before attempt
# n+1 is between half and all of base × 2^(n−1), at most the cap (a Retry-After header wins);
# an endpoint is disabled after this many dead deliveries in a row; a rotated secret still
# signs for the grace period. Private, loopback… addresses are refused unless in an allowed
# network (CIDR list). STATIC_HOSTS maps host names to addresses before DNS (tests use it).
CONVEYOR_WEBHOOK_TIMEOUT = env.float("CONVEYOR_WEBHOOK_TIMEOUT", default=10.0)
CONVEYOR_WEBHOOK_BACKOFF_BASE = env.float("CONVEYOR_WEBHOOK_BACKOFF_BASE", default=30.0)
CONVEYOR_WEBHOOK_BACKOFF_CAP = env.float("CONVEYOR_WEBHOOK_BACKOFF_CAP", default=3600.0)
CONVEYOR_WEBHOOK_DISABLE_AFTER = env.int("CONVEYOR_WEBHOOK_DISABLE_AFTER", default=10)
CONVEYOR_WEBHOOK_ROTATION_GRACE = env.int("CONVEYOR_WEBHOOK_ROTATION_GRACE", default=24 * 3600)
CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = env.list("CONVEYOR_WEBHOOK_ALLOWED_NETWORKS", default=[])
CONVEYOR_WEBHOOK_STATIC_HOSTS: dict[str, list[str]] = {}
# Certificates trusted for https:// endpoints (a PEM file); empty: the system's.
CONVEYOR_WEBHOOK_CA_BUNDLE = env.str("CONVEYOR_WEBHOOK_CA_BUNDLE", default="")
# Workers learn of changes to job.* subscriptions within this many seconds.
CONVEYOR_WEBHOOK_SUBSCRIPTION_TTL = env.float("CONVEYOR_WEBHOOK_SUBSCRIPTION_TTL", default=10.0)


def _rq_queue_name(queue: str, priority: str) -> str:
    return queue if priority == "normal" else f"{queue}.{priority}"


RQ_QUEUES = {
    _rq_queue_name(queue, priority): {**REDIS_CONNECTION, "DEFAULT_TIMEOUT": spec["timeout"]}
    for queue, spec in CONVEYOR_QUEUES.items()
    for priority in CONVEYOR_PRIORITIES
}
RQ = {"COMMIT_MODE": "auto", "WORKER_CLASS": CONVEYOR_WORKER_CLASS}
RQ_SHOW_ADMIN_LINK = False

# --- Contact imports and exports (docs/imports.md) -------------------------------------------

CONTACT_IMPORT_MAX_BYTES = env.int("CONTACT_IMPORT_MAX_BYTES", default=50 * 1024 * 1024)
CONTACT_IMPORT_MAX_ROWS = env.int("CONTACT_IMPORT_MAX_ROWS", default=200_000)
CONTACT_IMPORT_MAX_FIELD_CHARS = env.int("CONTACT_IMPORT_MAX_FIELD_CHARS", default=10_000)
CONTACT_IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES = env.int(
    "CONTACT_IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES", default=500 * 1024 * 1024
)
CONTACT_IMPORT_XLSX_MAX_RATIO = env.int("CONTACT_IMPORT_XLSX_MAX_RATIO", default=100)
CONTACT_IMPORT_BATCH_SIZE = env.int("CONTACT_IMPORT_BATCH_SIZE", default=5000)
CONTACT_EXPORT_PDF_MAX_ROWS = env.int("CONTACT_EXPORT_PDF_MAX_ROWS", default=5000)

# --- API --------------------------------------------------------------------------------------

# Failed sign-ins (API keys and admin passwords) a client may make in the window: in all, and
# per account; past either it gets 429 with Retry-After until the window ends. Counted per
# client, so a stranger cannot lock an account's owner out.
CONVEYOR_FAILED_LOGINS = {
    "per_client": env.int("FAILED_LOGINS_PER_CLIENT", default=50),
    "per_account": env.int("FAILED_LOGINS_PER_ACCOUNT", default=10),
    "window_seconds": env.int("FAILED_LOGINS_WINDOW", default=900),
}

# What rendering one part of a message template may cost: loop passes in all (nested loops
# multiply) and characters of output. Past either the render fails with a 400 naming the limit.
TEMPLATE_RENDER_BUDGET = {
    "iterations": env.int("TEMPLATE_RENDER_MAX_ITERATIONS", default=10_000),
    "chars": env.int("TEMPLATE_RENDER_MAX_CHARS", default=1_000_000),
}

# JSON request bodies nested deeper than this are refused with 400 (config.parsers).
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=64)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jobs.api.throttles.ThrottledApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "jobs.api.common.ConveyorAutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.handle_api_exception",
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Per user and per tenant, counted in Redis across processes (one round trip for both).
    "DEFAULT_THROTTLE_CLASSES": ["jobs.api.throttles.ApiRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("API_THROTTLE_RATE", default="6000/min"),
        "tenant": env.str("API_TENANT_THROTTLE_RATE", default="6000/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Conveyor API",
    "DESCRIPTION": "Tracked, tenant-scoped background jobs: enqueue, follow, cancel and retry.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",  # operations are tagged by what follows: jobs, queues…
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.Job.Status",
        "RoleEnum": "tenants.models.Role",
        "MessageStatusEnum": "communications.models.Message.Status",
        "MessageDeliveryStatusEnum": "communications.models.Message.Delivery",
        "CampaignStatusEnum": "communications.models.Campaign.Status",
        "HealthStatusEnum": ["healthy", "degraded", "error"],
        "PriorityEnum": "jobs.models.Priority",
        "TenantPriorityEnum": [(p, p.capitalize()) for p in CONVEYOR_TENANT_LIMITS["priorities"]],
        # Imports, exports and reports share the engine's words: one enum for the three.
        "WorkStatusEnum": "communications.models.imports.TransferStatus",
        "ImportFormatEnum": "communications.models.imports.ContactImport.Format",
        "ExportFormatEnum": "communications.models.imports.ContactExport.Format",
        "WebhookDeliveryStatusEnum": "communications.models.WebhookDelivery.Status",
        "WebhookEventTypeEnum": "communications.models.EventType",
        "ReportFormatEnum": "reports.models.ReportFormat",
        "ReportTypeEnum": "reports.models.ReportType",
        "ChannelEnum": "communications.models.Channel",
        "AlertChannelEnum": "alerts.models.Channel",
        "AlertConditionEnum": "alerts.models.Condition",
        "IncidentStatusEnum": "alerts.models.Incident.Status",
    },
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Logging ----------------------------------------------------------------------------------

# Every record written inside a job gets job_id, kind, tenant and attempt (installed by the jobs
# app, jobs.log_context); lines written outside a job show "-". LOG_FORMAT=json for log shippers.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # Job fields (and trace ids) only on the lines written inside a job.
        "plain": {"()": "jobs.log_context.PlainFormatter"},
        "json": {"()": "jobs.log_context.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env.str("LOG_FORMAT", default="plain"),
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "rq": {"level": env.str("RQ_LOG_LEVEL", default="WARNING")},
        # WeasyPrint reports each step and page of a PDF at INFO; its warnings still show.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        # At DEBUG boto3 logs each signed request (its access key id) and each answer's body.
        "botocore": {"level": "INFO"},
        "boto3": {"level": "INFO"},
    },
}
