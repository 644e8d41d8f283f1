"""Alerts tests: real health checks against the test Redis and PostgreSQL, rules evaluated on
them, notices delivered by real workers. `check(at=…)` stores a real check as if made then."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from alerts.models import AlertRule
from alerts.services.incidents import Evaluation, evaluate_rules
from alerts.services.rules import ensure_builtin_rules
from jobs.models import HealthCheck
from jobs.services.health import record_health_check
from tests.factories import UserFactory

type Check = Callable[..., Evaluation]


@pytest.fixture(autouse=True)
def builtin_rules_off(db: None) -> None:
    """The built-in rules exist (as in production) but stay quiet unless a test enables one."""
    ensure_builtin_rules()
    AlertRule.objects.exclude(builtin="").update(enabled=False)


@pytest.fixture
def check(django_capture_on_commit_callbacks: Callable) -> Check:
    """Record a real health check (optionally dated `minutes` from now) and evaluate the rules;
    what they enqueue after commit is handed to Redis."""

    def run(*, minutes: float = 0) -> Evaluation:
        with django_capture_on_commit_callbacks(execute=True):
            stored = record_health_check()
            if minutes:
                stored.checked_at = timezone.now() + timedelta(minutes=minutes)
                HealthCheck.objects.filter(pk=stored.pk).update(checked_at=stored.checked_at)
            return evaluate_rules(stored)

    return run


@pytest.fixture
def operator() -> User:
    return UserFactory.create(username="ops", is_superuser=True, is_staff=True)


@pytest.fixture
def on_call() -> User:
    return UserFactory.create(username="on-call", is_superuser=True, is_staff=True)
