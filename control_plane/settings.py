"""Django settings. Every value from the environment comes through control_plane.config."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from control_plane.config import load_config, secret_key
from synthtune.logs import register_secret

CONFIG = load_config()
BASE_DIR = Path(__file__).resolve().parent

# --- synthtune ----------------------------------------------------------------
SYNTHTUNE_DATA_ROOT: Path = CONFIG.data_root.resolve()
SYNTHTUNE_GRPC_TOKEN = CONFIG.grpc_token
SYNTHTUNE_GRPC_TLS_CA = CONFIG.grpc_tls_ca
SYNTHTUNE_GRPC_TIMEOUT_S = CONFIG.grpc_timeout_s
SYNTHTUNE_DATAGEN_ADDR = CONFIG.datagen_addr
SYNTHTUNE_TRAINER_ADDR = CONFIG.trainer_addr
SYNTHTUNE_SERVING_PROXY_ADDR = CONFIG.serving_proxy_addr
# Deployments are checked against what vLLM serves on every list/retrieve, and by the worker this often.
SYNTHTUNE_RECONCILE_S = CONFIG.reconcile_s
SYNTHTUNE_WORKER_POLL_S = CONFIG.worker_poll_s
SYNTHTUNE_WORKER_BACKOFF_MAX_S = CONFIG.worker_backoff_max_s
# Prometheus: the worker serves /metrics on its own port; the web on its HTTP port (control_plane.core.metrics).
SYNTHTUNE_METRICS_PORT = CONFIG.metrics_port
SYNTHTUNE_METRICS_HOST = CONFIG.metrics_host
SYNTHTUNE_METRICS_TOKEN = CONFIG.metrics_token
# The worker follows these.
SYNTHTUNE_WORKER_FOLLOWERS = [
    "control_plane.datasets.worker.GenerationFollower",
    "control_plane.runs.worker.RunFollower",
    "control_plane.deployments.worker.ReconcileFollower",
]
# Server-Sent Events: how often a stream looks for new events (one indexed query), and
# how long one response lasts before the browser reconnects (Last-Event-ID: nothing lost).
SYNTHTUNE_SSE_POLL_S = CONFIG.sse_poll_s
SYNTHTUNE_SSE_MAX_S = 25.0
SYNTHTUNE_PREVIEW_MAX_ROWS = 100
# The old Flask app's routes (control_plane.legacy): anonymous callers only when this is on.
SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS = CONFIG.legacy_allow_anonymous
# Runs that name no adapter get this stem (<stem>-v<N>); empty: the trainer's "<model>-lora".
SYNTHTUNE_DEFAULT_ADAPTER_NAME = CONFIG.default_adapter_name
# Request bodies (control_plane.core.limits): an uploaded file up to this, anything else up to
# DATA_UPLOAD_MAX_MEMORY_SIZE (below); past either, 413 before the body is read.
SYNTHTUNE_UPLOAD_MAX_BYTES = CONFIG.upload_max_bytes
# API calls per user and per anonymous address (control_plane.core.throttling); "" is no limit.
SYNTHTUNE_THROTTLE_USER = CONFIG.throttle_user
SYNTHTUNE_THROTTLE_ANON = CONFIG.throttle_anon
# API tokens that authenticated are trusted this many seconds without a query (control_plane.core.
# authentication): a revoked one is refused at most this much later; 0: every call asks the database.
SYNTHTUNE_TOKEN_CACHE_S = CONFIG.token_cache_s
# /v1/ inference (control_plane.openai_api.relay): vLLM's API key, masked in every log line, and
# whether a known adapter that no vLLM serves is loaded on first use.
SYNTHTUNE_VLLM_TOKEN = CONFIG.vllm_token
register_secret(SYNTHTUNE_VLLM_TOKEN)
SYNTHTUNE_OPENAI_AUTOLOAD = CONFIG.openai_autoload

# --- Django -------------------------------------------------------------------
SECRET_KEY = secret_key(CONFIG)
DEBUG = CONFIG.debug
ALLOWED_HOSTS = CONFIG.allowed_hosts_list
CSRF_TRUSTED_ORIGINS = CONFIG.csrf_trusted_origins_list

INSTALLED_APPS = [
    "control_plane.core.apps.SynthtuneAdminConfig",  # django.contrib.admin, our home page
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "control_plane.core",
    "control_plane.datasets",
    "control_plane.runs",
    "control_plane.deployments",
    "control_plane.legacy",
    "control_plane.openai_api",
]

MIDDLEWARE = [
    "control_plane.core.metrics.MetricsMiddleware",  # first: times and counts everything below
    "control_plane.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Login everywhere by default; API views opt out because DRF answers 401/403 itself.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "control_plane.urls"
WSGI_APPLICATION = "control_plane.wsgi.application"
LOGIN_URL = "admin:login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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


def _database() -> dict:
    url = CONFIG.database_url
    if not url:
        SYNTHTUNE_DATA_ROOT.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{SYNTHTUNE_DATA_ROOT / 'control_plane.sqlite3'}"
    database = dj_database_url.parse(url, conn_health_checks=True)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # The web process and the worker write at once: WAL lets readers go on while one
        # writes, IMMEDIATE takes the write lock up front instead of failing mid-transaction.
        database["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # Tests get a file, not Django's in-memory default, so a real worker process
        # (and threads) can share the test database.
        if database["NAME"] != ":memory:":
            name = Path(database["NAME"])
            database["TEST"] = {"NAME": str(name.with_name(f"test-{name.name}"))}
    # Keep connections across requests: opening one (and, for SQLite, its PRAGMAs) is a
    # large share of a short API call. The health check drops one the server closed.
    database["CONN_MAX_AGE"] = 60
    return database


DATABASES = {"default": _database()}
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
STATIC_ROOT = CONFIG.static_root
# Serve app static files (admin, Swagger UI from the sidecar) without a collectstatic step.
WHITENOISE_USE_FINDERS = True
# JSON uploads carry the whole dataset in the body; multipart files stream to disk instead.
DATA_UPLOAD_MAX_MEMORY_SIZE = CONFIG.body_max_bytes

# The throttles' counts. Local memory: each process counts alone, so with W gunicorn workers and
# R replicas a caller may make up to W x R times the rate. Fine for a guard against runaway
# clients; a shared count would cost a cache round trip (or, with the database cache, a write)
# on every API call.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "synthtune"}}

LOGGING_CONFIG = "control_plane.core.logging.configure"
LOGGING = {"service": "control_plane", "level": CONFIG.log_level}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header turns anonymous calls into 401, not 403.
        "control_plane.core.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "control_plane.core.parsers.StrictMultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "control_plane.core.exceptions.api_exception_handler",
    # Rates from SYNTHTUNE_THROTTLE_USER / _ANON, read per request (so tests can set them).
    "DEFAULT_THROTTLE_CLASSES": [
        "control_plane.core.throttling.UserRateThrottle",
        "control_plane.core.throttling.AnonRateThrottle",
    ],
    # X-Forwarded-For hops to trust when telling anonymous callers apart; DRF's default (None)
    # would take the whole header, which any client can set.
    "NUM_PROXIES": CONFIG.trusted_proxies,
    # `?format=` is ours (download as instruction or chat), not DRF's renderer switch.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "synthtune control plane",
    "DESCRIPTION": "Datasets, generation jobs, fine-tuning runs, adapters, their deployments into vLLM "
    "and base-vs-adapter comparisons. "
    "Authenticate with `Authorization: Token <key>` "
    "(create one with `python -m control_plane drf_create_token <user>`) or an admin session.",
    "VERSION": "v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Offline: Swagger UI and ReDoc come from drf-spectacular-sidecar's static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Runs, jobs and deployments each have a "state" with their own choices (generation jobs and the
    # comparison judge a "mode"): name them apart.
    # drf-spectacular's enum hook (it rebuilds the components, so it goes first), then the
    # framework's statuses (400, 401/403, 404, 413, 415, 429) on every operation, each error
    # status with its body (control_plane.core.schema).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "control_plane.core.schema.postprocess_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "DeploymentStateEnum": "control_plane.deployments.models.Deployment.State",
        "JudgeModeEnum": "control_plane.deployments.apis.JUDGE_MODES",
    },
}
