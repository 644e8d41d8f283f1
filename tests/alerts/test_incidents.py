"""Rules driven through open → escalate → resolve by real conditions: a queue nobody serves,
a backlog, injected failures, slow waits, a worker's own figures, Redis down."""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from alerts.models import AlertNotice, AlertRule, Condition, Incident
from alerts.services.incidents import acknowledge_incident
from alerts.services.rules import create_rule
from communications.models import Message
from jobs.models import HealthCheck, Job
from jobs.runtime.worker import FastWorker
from jobs.services.health import check_health_if_due
from jobs.services.jobs import enqueue_job
from jobs.transport import queueing
from tenants.models import Role
from tests.alerts.helpers import notices, only_incident, titles
from tests.factories import make_member

pytestmark = pytest.mark.django_db

OPENED, ESCALATED, RESOLVED = "opened", "escalated", "resolved"


def escalating_to(user) -> dict:
    """Escalate after 5 minutes unacknowledged, to `user` in-app."""
    return {
        "escalate_after_minutes": 5,
        "recipients": [{"level": 1, "channel": "in_app", "user": user}],
    }


def no_worker_rule(**fields) -> AlertRule:
    return create_rule(
        tenant=None,
        name="Nobody serves a queue",
        condition=Condition.NO_WORKER,
        notify_admins=False,
        publish_webhooks=False,
        **fields,
    )


def test_a_queue_nobody_serves_opens_escalates_and_resolves_one_incident(
    tenant, operator, on_call, check, run_worker, django_capture_on_commit_callbacks
):
    rule = no_worker_rule(
        escalate_after_minutes=5,
        recipients=[
            {"level": 0, "channel": "email", "user": operator},
            {"level": 0, "channel": "in_app", "user": operator},
            {"level": 1, "channel": "in_app", "user": on_call},
        ],
    )
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    opened = check()
    again = check(minutes=1)
    escalated = check(minutes=6)
    nothing_further = check(minutes=12)
    run_worker()  # the job and the email run: the queues are empty and served
    resolved = check(minutes=13)
    run_worker()

    incident = only_incident(rule)
    assert (opened.opened, again.opened, escalated.escalated, resolved.resolved) == (1, 0, 1, 1)
    assert nothing_further.escalated == 0  # no level 2 to tell
    assert (incident.status, incident.level) == (Incident.Status.RESOLVED, 1)
    assert notices(incident) == [
        (OPENED, "email", "ops"),
        (OPENED, "in_app", "ops"),
        (ESCALATED, "in_app", "on-call"),
        (RESOLVED, "email", "ops"),
        (RESOLVED, "in_app", "ops"),
        (RESOLVED, "in_app", "on-call"),
    ]
    assert titles(operator) == [
        "Alert: Nobody serves a queue (platform)",
        "Resolved: Nobody serves a queue (platform)",
    ]
    assert titles(on_call) == [
        "Alert escalated: Nobody serves a queue (platform)",
        "Resolved: Nobody serves a queue (platform)",
    ]
    assert [m.subject for m in mail.outbox] == [
        "Alert: Nobody serves a queue (platform)",
        "Resolved: Nobody serves a queue (platform)",
    ]
    assert "No live worker for default (1 waiting)" in mail.outbox[0].body


def test_an_acknowledged_incident_does_not_escalate(
    tenant, operator, on_call, check, django_capture_on_commit_callbacks
):
    rule = no_worker_rule(
        escalate_after_minutes=5, recipients=[{"level": 1, "channel": "in_app", "user": on_call}]
    )
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    check()
    acknowledge_incident(only_incident(rule), by=operator)

    later = check(minutes=30)

    assert later.escalated == 0
    assert ESCALATED not in {event for event, _, _ in notices(only_incident(rule))}
    assert only_incident(rule).acknowledged_by == operator


def test_a_flapping_condition_waits_out_the_cooldown_before_opening_again(
    tenant, operator, check, run_worker, django_capture_on_commit_callbacks
):
    rule = no_worker_rule(
        cooldown_minutes=10, recipients=[{"level": 0, "channel": "in_app", "user": operator}]
    )

    def backlog() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    backlog()
    check()
    run_worker()
    check(minutes=1)  # resolved at +1 min
    backlog()
    during_cooldown = check(minutes=5)
    after_cooldown = check(minutes=12)
    run_worker(["notifications"])

    assert during_cooldown.opened == 0
    assert after_cooldown.opened == 1
    assert Incident.objects.filter(rule=rule).count() == 2
    assert titles(operator) == [
        "Alert: Nobody serves a queue (platform)",
        "Resolved: Nobody serves a queue (platform)",
        "Alert: Nobody serves a queue (platform)",
    ]


def test_a_silenced_rule_opens_nothing_until_the_silence_ends(
    tenant, operator, check, django_capture_on_commit_callbacks
):
    rule = no_worker_rule(
        silenced_until=timezone.now() + timedelta(minutes=30),
        recipients=[{"level": 0, "channel": "in_app", "user": operator}],
    )
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    silenced = check()
    after = check(minutes=31)

    assert (silenced.opened, after.opened) == (0, 1)
    assert only_incident(rule).status == Incident.Status.OPEN


def test_the_scheduled_check_tells_superusers_through_a_built_in_rule(
    tenant, operator, django_capture_on_commit_callbacks
):
    AlertRule.objects.filter(builtin="no_worker").update(enabled=True)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    with django_capture_on_commit_callbacks(execute=True):
        first = check_health_if_due()
        second = check_health_if_due()  # not due again for 30 s

    incident = only_incident(AlertRule.objects.get(builtin="no_worker"))
    assert first is not None
    assert second is None
    assert HealthCheck.objects.count() == 1
    assert first.components["queue:default"][:2] == ["error", "1 waiting, no live worker."]
    assert notices(incident) == [
        (OPENED, "webhook", ""),  # the system tenant's endpoints, none subscribed here
        (OPENED, "email", "ops"),
        (OPENED, "in_app", "ops"),
    ]
    email = Message.objects.get(recipient=operator.email)
    assert email.tenant.slug == "system"
    assert email.job is not None
    assert email.job.queue == "email"


def test_a_tenants_backlog_rule_sees_only_its_own_jobs_and_tells_only_its_members(
    tenant, other_tenant, tenant_admin, agent, check, run_worker, django_capture_on_commit_callbacks
):
    globex_admin = make_member(other_tenant, Role.ADMIN, username="globex-admin")
    acme = create_rule(
        tenant=tenant,
        name="Acme backlog",
        condition=Condition.OLDEST_WAITING,
        threshold=60,
        **escalating_to(agent),
    )
    globex = create_rule(
        tenant=other_tenant, name="Globex backlog", condition=Condition.OLDEST_WAITING, threshold=60
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(minutes=2))

    check()
    figures = only_incident(acme).figures
    check(minutes=6)
    run_worker()
    check(minutes=7)
    run_worker(["notifications"])

    incident = only_incident(acme)
    assert not Incident.objects.filter(rule=globex).exists()
    assert figures["waiting"] == 1
    assert figures["oldest_waiting_seconds"] > 60
    assert notices(incident) == [
        (OPENED, "webhook", ""),
        (OPENED, "email", "adam-admin"),
        (OPENED, "in_app", "adam-admin"),
        (ESCALATED, "webhook", ""),
        (ESCALATED, "in_app", "agnes-agent"),
        (RESOLVED, "webhook", ""),
        (RESOLVED, "email", "adam-admin"),
        (RESOLVED, "in_app", "adam-admin"),
        (RESOLVED, "in_app", "agnes-agent"),
    ]
    assert titles(tenant_admin) == ["Alert: Acme backlog (Acme)", "Resolved: Acme backlog (Acme)"]
    assert titles(globex_admin) == []
    assert not AlertNotice.objects.filter(tenant=other_tenant).exists()


def test_injected_failures_open_a_tenants_failure_rate_and_dead_letter_incidents_only(
    tenant, other_tenant, tenant_admin, agent, check, run_worker, django_capture_on_commit_callbacks
):
    globex_admin = make_member(other_tenant, Role.ADMIN, username="globex-admin")
    rate = create_rule(
        tenant=tenant,
        name="Failing",
        condition=Condition.FAILURE_RATE,
        threshold=0.5,
        min_jobs=3,
        **escalating_to(agent),
    )
    dead = create_rule(
        tenant=tenant,
        name="Dead letters",
        condition=Condition.DEAD_LETTERS,
        threshold=3,
        **escalating_to(agent),
    )
    theirs = create_rule(
        tenant=other_tenant,
        name="Failing",
        condition=Condition.FAILURE_RATE,
        threshold=0.0,
        min_jobs=1,
    )
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            enqueue_job(tenant=tenant, kind="jobs.fail", payload={"permanent": True})
        enqueue_job(tenant=other_tenant, kind="jobs.noop", payload={})
    run_worker(["default"])

    opened = check()
    figures = (only_incident(rate).figures, only_incident(dead).figures)
    escalated = check(minutes=6)
    resolved = check(minutes=30)  # the failures have left the 15-minute window
    run_worker(["notifications"])

    assert (opened.opened, escalated.escalated, resolved.resolved) == (2, 2, 2)
    assert figures == ({"ended": 3, "failed": 3, "rate": 1.0}, {"dead_letters": 3})
    assert not Incident.objects.filter(rule=theirs).exists()
    assert titles(tenant_admin) == [
        "Alert: Failing (Acme)",
        "Alert: Dead letters (Acme)",
        "Resolved: Failing (Acme)",
        "Resolved: Dead letters (Acme)",
    ]
    assert titles(agent) == [
        "Alert escalated: Failing (Acme)",
        "Alert escalated: Dead letters (Acme)",
        "Resolved: Failing (Acme)",
        "Resolved: Dead letters (Acme)",
    ]
    assert titles(globex_admin) == []


def test_a_tenant_whose_jobs_waited_long_opens_the_wait_p95_incident(
    tenant, other_tenant, on_call, check, run_worker, django_capture_on_commit_callbacks
):
    rule = create_rule(
        tenant=None,
        name="Slow waits",
        condition=Condition.TENANT_WAIT_P95,
        threshold=300,
        notify_admins=False,
        **escalating_to(on_call),
    )
    with django_capture_on_commit_callbacks(execute=True):
        slow = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
        enqueue_job(tenant=other_tenant, kind="jobs.noop", payload={})
    Job.objects.filter(pk=slow.pk).update(enqueued_at=timezone.now() - timedelta(minutes=10))
    run_worker(["default"])

    check()
    incident = only_incident(rule)
    check(minutes=6)
    check(minutes=30)  # the slow job has left the 15-minute window
    run_worker(["notifications"])

    assert list(incident.figures["p95"]) == ["acme"]
    assert incident.figures["p95"]["acme"] >= 600
    assert "acme" in incident.summary
    assert "globex" not in incident.summary
    assert titles(on_call) == [
        "Alert escalated: Slow waits (platform)",
        "Resolved: Slow waits (platform)",
    ]


def test_a_workers_own_memory_and_its_hosts_disk_open_incidents_until_it_is_gone(
    on_call, check, settings
):
    settings.CONVEYOR_FIGURES_SECONDS = 0
    memory = create_rule(
        tenant=None,
        name="Memory",
        condition=Condition.WORKER_MEMORY,
        threshold=1,
        **escalating_to(on_call),
    )
    disk = create_rule(
        tenant=None,
        name="Disk",
        condition=Condition.DISK_FREE,
        threshold=10**6,
        **escalating_to(on_call),
    )
    worker = FastWorker(["default"], connection=queueing.connection())
    worker.register_birth()
    worker.heartbeat()
    worker.report_figures()

    opened = check()
    escalated = check(minutes=6)
    worker.register_death()
    queueing.connection().delete(worker.key)
    resolved = check(minutes=7)

    assert (opened.opened, escalated.escalated, resolved.resolved) == (2, 2, 2)
    assert worker.name in only_incident(memory).figures["rss_mb"]
    assert only_incident(disk).status == Incident.Status.RESOLVED
    stored = HealthCheck.objects.filter(workers__has_key=worker.name).earliest("checked_at")
    assert set(stored.workers[worker.name]) >= {"rss_mb", "cpu_percent", "load_1m", "disk_free_gb"}


def test_redis_down_opens_the_component_incident_and_redis_back_resolves_it(
    operator, on_call, check, settings
):
    rule = create_rule(
        tenant=None,
        name="Redis",
        condition=Condition.COMPONENT_DOWN,
        component="redis",
        publish_webhooks=False,
        **escalating_to(on_call),
    )
    unreachable = {
        name: {**config, "URL": "redis://127.0.0.1:1/0"}
        for name, config in settings.RQ_QUEUES.items()
    }
    with override_settings(RQ_QUEUES=unreachable):
        down = check()
        still_down = check(minutes=6)
    back = check(minutes=7)

    incident = only_incident(rule)
    assert (down.opened, still_down.escalated, back.resolved) == (1, 1, 1)
    assert incident.figures == {"down": ["redis"]}
    told_in_app = [(e, who) for e, channel, who in notices(incident) if channel == "in_app"]
    assert told_in_app == [
        (OPENED, "ops"),
        (OPENED, "on-call"),
        (ESCALATED, "on-call"),
        (RESOLVED, "ops"),
        (RESOLVED, "on-call"),
    ]
    # The emails were recorded while Redis was down and wait, pending, for the reconciler.
    assert Message.objects.filter(recipient=operator.email).count() == 2
