import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import check_deployment, redis_connection

BASE_DIR = Path(__file__).resolve().parents[2]
GOOD: dict[str, Any] = {
    "debug": False,
    "secret_key": "s3cret" * 10,
    "allowed_hosts": ["conveyor.example"],
    "metrics_token": "m3trics" * 5,
}


@pytest.mark.parametrize("environment", ["production", "development", "test"])
def test_sound_settings_have_no_problems(environment):
    assert check_deployment(environment=environment, **GOOD) == []


@pytest.mark.parametrize("environment", ["development", "test"])
def test_local_environments_accept_the_local_defaults(environment):
    problems = check_deployment(
        environment=environment, debug=True, secret_key="", allowed_hosts=[]
    )

    assert problems == []


def test_production_lists_every_missing_value():
    problems = check_deployment(
        environment="production", debug=True, secret_key="", allowed_hosts=[]
    )

    assert problems == [
        "SECRET_KEY is not set: production needs a long random secret key.",
        "DEBUG is on: production must run with DEBUG=false.",
        "ALLOWED_HOSTS is empty: list the host names this site serves.",
        "CONVEYOR_METRICS_TOKEN is not set: production serves /metrics only to a scraper "
        "that sends it (Authorization: Bearer <token>).",
    ]


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"secret_key": ""}, "SECRET_KEY"),
        ({"debug": True}, "DEBUG"),
        ({"allowed_hosts": []}, "ALLOWED_HOSTS"),
        ({"metrics_token": ""}, "CONVEYOR_METRICS_TOKEN"),
    ],
)
def test_production_names_the_one_value_that_is_wrong(change, word):
    problems = check_deployment(environment="production", **(GOOD | change))

    assert len(problems) == 1
    assert problems[0].startswith(word)


def test_an_unknown_environment_is_named():
    problems = check_deployment(environment="staging", **GOOD)

    assert problems == ["CONVEYOR_ENV must be one of production, development, test, not 'staging'."]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379/3"),
        ("rediss://:pw@redis.example:6380/0", "rediss://:pw@redis.example:6380/0"),
        ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=2"),
        ("valkey://127.0.0.1:6379/1", "redis://127.0.0.1:6379/1"),
    ],
)
def test_redis_and_unix_urls_are_passed_on_as_urls(url, expected):
    assert redis_connection(url) == {"URL": expected}


def test_a_sentinel_url_gives_the_sentinels_master_db_and_password():
    connection = redis_connection("sentinel://:s%40cret@s1:26380,s2/mymaster/4")

    assert connection == {
        "SENTINELS": [("s1", 26380), ("s2", 26379)],
        "MASTER_NAME": "mymaster",
        "DB": 4,
        "PASSWORD": "s@cret",
        "SOCKET_TIMEOUT": 5,
    }


def test_a_sentinel_url_may_give_the_db_as_a_query_parameter():
    connection = redis_connection("sentinel://s1:26379/mymaster?db=7")

    assert (connection["DB"], connection["PASSWORD"]) == (7, None)


def test_a_sentinel_url_without_a_master_name_is_refused():
    with pytest.raises(ImproperlyConfigured, match="needs a master name"):
        redis_connection("sentinel://s1:26379")


def test_an_unsupported_scheme_is_refused_with_the_supported_ones():
    with pytest.raises(ImproperlyConfigured, match=r"'http' is not supported: use redis://"):
        redis_connection("http://127.0.0.1:6379")


def test_production_without_a_secret_key_refuses_to_start():
    env = {
        **os.environ,
        # Cleared by setting them empty, so that a developer's .env cannot fill them in.
        "SECRET_KEY": "",
        "DEBUG": "",
        "ALLOWED_HOSTS": "",
        "CONVEYOR_METRICS_TOKEN": "",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CONVEYOR_ENV": "production",
    }

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "Conveyor cannot start" in result.stderr
    assert "SECRET_KEY is not set: production needs a long random secret key." in result.stderr
    assert "ALLOWED_HOSTS is empty" in result.stderr
    assert "CONVEYOR_METRICS_TOKEN is not set" in result.stderr
