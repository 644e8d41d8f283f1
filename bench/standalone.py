"""How a bench module run on its own (`python -m bench.<area>`) starts: settings, database."""

import os
from urllib.parse import urlsplit

import django
import psycopg
from psycopg import sql


def environment() -> None:
    """Settings for a bench process, unless the caller's environment says otherwise."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CONVEYOR_ENV", "development")
    os.environ.setdefault("DEBUG", "false")  # DEBUG keeps every query in memory


def ensure_database(url: str) -> None:
    """Create the database `url` names on its server if it does not exist yet."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        if not connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone():
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def setup(*, create_database: bool = True) -> None:
    """`environment()`, the spare database DATABASE_URL names (created if missing), Django."""
    environment()
    if create_database and "DATABASE_URL" in os.environ:
        ensure_database(os.environ["DATABASE_URL"])
    django.setup()
