"""Reading deployment values from the environment: validation and Redis URL parsing."""

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

ENVIRONMENTS = ("production", "development", "test")


def check_deployment(
    *,
    environment: str,
    debug: bool,
    secret_key: str,
    allowed_hosts: list[str],
    metrics_token: str = "",
) -> list[str]:
    """Return every reason the settings are unfit for `environment`; empty when they are fine."""
    if environment not in ENVIRONMENTS:
        return [f"CONVEYOR_ENV must be one of {', '.join(ENVIRONMENTS)}, not {environment!r}."]
    if environment != "production":
        return []
    problems = []
    if not secret_key:
        problems.append("SECRET_KEY is not set: production needs a long random secret key.")
    if debug:
        problems.append("DEBUG is on: production must run with DEBUG=false.")
    if not allowed_hosts:
        problems.append("ALLOWED_HOSTS is empty: list the host names this site serves.")
    if not metrics_token:
        problems.append(
            "CONVEYOR_METRICS_TOKEN is not set: production serves /metrics only to a scraper "
            "that sends it (Authorization: Bearer <token>)."
        )
    return problems


def redis_connection(url: str) -> dict[str, Any]:
    """Turn REDIS_URL into django-rq's connection options (redis, rediss, unix or sentinel)."""
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss", "unix", "valkey", "valkeys"):
        scheme = parts.scheme.replace("valkey", "redis")
        return {"URL": scheme + url[len(parts.scheme) :]}
    if parts.scheme != "sentinel":
        raise ImproperlyConfigured(
            f"REDIS_URL scheme {parts.scheme!r} is not supported: use redis://, rediss://, "
            "unix:// or sentinel://host:port[,host:port]/master_name[/db]"
        )
    return _sentinel_connection(parts.netloc, parts.path, parse_qs(parts.query))


def _sentinel_connection(netloc: str, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
    password = None
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        password = unquote(credentials.split(":", 1)[-1]) or None
    sentinels = []
    for address in netloc.split(","):
        host, _, port = address.partition(":")
        sentinels.append((host, int(port or 26379)))
    segments = [segment for segment in path.split("/") if segment]
    if not segments:
        raise ImproperlyConfigured("REDIS_URL sentinel:// needs a master name: sentinel://h:p/name")
    db = int(segments[1]) if len(segments) > 1 else int(query.get("db", ["0"])[0])
    return {
        "SENTINELS": sentinels,
        "MASTER_NAME": segments[0],
        "DB": db,
        "PASSWORD": password,
        "SOCKET_TIMEOUT": 5,
    }


_MAILER_OPTIONS = {
    "EMAIL_HOST": "host",
    "EMAIL_PORT": "port",
    "EMAIL_HOST_USER": "username",
    "EMAIL_HOST_PASSWORD": "password",
    "EMAIL_USE_TLS": "use_tls",
    "EMAIL_USE_SSL": "use_ssl",
    "EMAIL_TIMEOUT": "timeout",
    "EMAIL_FILE_PATH": "file_path",
}


def mailer(config: dict[str, Any]) -> dict[str, Any]:
    """Django's MAILERS entry for what django-environ read from EMAIL_URL."""
    backend = config["EMAIL_BACKEND"]
    options = {
        option: config[name]
        for name, option in _MAILER_OPTIONS.items()
        if name in config and ("smtp" in backend or name == "EMAIL_FILE_PATH")
    }
    return {
        "BACKEND": backend,
        "OPTIONS": {k: v for k, v in options.items() if v not in ("", None)},
    }
