"""Shared fixtures: a clean test Redis around each test, and in-process RQ workers."""

from collections.abc import Iterator

import django_rq
import pytest


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    connection = django_rq.get_connection("default")  # test settings point at a spare database
    connection.flushdb()
    yield
    connection.flushdb()
