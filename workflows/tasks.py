"""Built-in step kinds for workflows and automations: wait, send a message, tag a contact, call a
webhook, notify members; and the kind a schedule uses to start a workflow.

Every object a payload names is looked up in the job's own tenant: another tenant's contact is
"no such contact", whatever its id.
"""

from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from rest_framework import serializers

from communications.models import Channel, Contact, Message
from communications.services.contacts import update_contact
from communications.services.messages import compose_message, deliver
from communications.services.notifications import notify_members as notify
from communications.webhook_sender import post_json
from jobs.errors import PermanentError, RetryableError
from jobs.kinds import job_kind
from jobs.runtime.context import JobContext
from tenants.models import Role
from workflows.graph import check_graph
from workflows.models import Workflow
from workflows.services.running import check_on_end, reconcile_workflows, start_workflow


@job_kind("workflows.wait", queue="default", public=True)
def wait(ctx: JobContext) -> dict[str, Any]:
    """A step that only waits: give it a `delay`; its dependents run once the delay is over."""
    return {"waited_since": ctx.job.created_at.isoformat()}


def _contact(ctx: JobContext, contact_id: int) -> Contact:
    try:
        return Contact.objects.for_tenant(ctx.tenant).get(pk=contact_id)
    except ObjectDoesNotExist:
        raise PermanentError(f"No contact {contact_id} in this tenant.") from None


class SendMessagePayload(serializers.Serializer):
    contact_id = serializers.IntegerField(min_value=1)
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.EMAIL)
    template = serializers.SlugField(max_length=100)
    variables = serializers.DictField(default=dict)


@job_kind(
    "workflows.send_message",
    queue="messaging",
    max_attempts=3,
    payload=SendMessagePayload,
    public=True,
)
def send_message(
    ctx: JobContext, *, contact_id: int, channel: str, template: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """Send a template message to a contact now; fails (for on_failure edges) if it is not sent."""
    message = Message.objects.filter(tenant=ctx.tenant, job=ctx.job).first()
    if message is None:
        try:
            message = compose_message(
                tenant=ctx.tenant,
                channel=channel,
                template=template,
                contact=_contact(ctx, contact_id),
                variables=variables,
                job=ctx.job,
            )
        except ValidationError as error:
            raise PermanentError(f"Not sent: {'; '.join(error.messages)}") from None
    outcome = deliver(message, job=ctx.job, final=ctx.attempt >= ctx.job.max_attempts)
    if outcome.to_retry:
        raise RetryableError(outcome.error, delay=outcome.retry_delay)
    if outcome.status != Message.Status.SENT:
        raise PermanentError(f"Message {message.pk} {outcome.status}: {outcome.error}")
    return {"message_id": message.pk, "status": outcome.status, "recipient": message.recipient}


class TagContactPayload(serializers.Serializer):
    contact_id = serializers.IntegerField(min_value=1)
    add = serializers.ListField(child=serializers.CharField(max_length=50), default=list)
    remove = serializers.ListField(child=serializers.CharField(max_length=50), default=list)


@job_kind("workflows.tag_contact", queue="default", payload=TagContactPayload, public=True)
def tag_contact(
    ctx: JobContext, *, contact_id: int, add: list[str], remove: list[str]
) -> dict[str, Any]:
    """Add and remove tags of a contact (doing it again changes nothing)."""
    contact = _contact(ctx, contact_id)
    tags = [tag for tag in [*contact.tags, *add] if tag not in remove]
    try:
        contact = update_contact(contact, tags=tags)
    except ValidationError as error:
        raise PermanentError("; ".join(error.messages)) from None
    return {"contact_id": contact.pk, "tags": list(contact.tags)}


class CallWebhookPayload(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    body = serializers.JSONField(default=dict)


@job_kind(
    "workflows.call_webhook",
    queue="webhooks",
    max_attempts=5,
    payload=CallWebhookPayload,
    public=True,
)
def call_webhook(ctx: JobContext, *, url: str, body: Any) -> dict[str, Any]:
    """POST `body` as JSON to a public URL; 2xx succeeds, 5xx and 429 retry, other codes fail."""
    outcome = post_json(url, body)
    if outcome.refused:
        raise PermanentError(outcome.error)
    result = {"status_code": outcome.status_code, "body": outcome.excerpt}
    if outcome.succeeded:
        return result
    if outcome.permanent:
        raise PermanentError(f"{url} answered {outcome.summary}: {outcome.excerpt[:200]}")
    raise RetryableError(f"{url}: {outcome.summary}", delay=outcome.retry_after)


class NotifyMembersPayload(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    body = serializers.CharField(default="", allow_blank=True)
    link = serializers.CharField(default="", allow_blank=True, max_length=500)
    min_role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


@job_kind("workflows.notify_members", queue="default", payload=NotifyMembersPayload, public=True)
def notify_members(
    ctx: JobContext, *, title: str, body: str, link: str, min_role: str
) -> dict[str, Any]:
    """Notify the tenant's members of `min_role` and above, in the app (by the job it queues)."""
    job = notify(ctx.tenant, min_role=min_role, title=title, body=body, link=link)
    return {"notify_job": str(job.pk)}


class StartWorkflowPayload(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    steps = serializers.JSONField()
    input = serializers.DictField(default=dict)
    on_end = serializers.JSONField(default=None, allow_null=True)

    def validate_steps(self, value: Any) -> Any:
        check_graph(value)
        return value

    def validate_on_end(self, value: Any) -> Any:
        check_on_end(value)
        return value


@job_kind("workflows.start_workflow", queue="default", payload=StartWorkflowPayload, public=True)
def start(
    ctx: JobContext, *, name: str, steps: Any, input: dict[str, Any], on_end: Any
) -> dict[str, Any]:
    """Start a workflow (a schedule's way to run one); a second delivery starts nothing more."""
    workflow = Workflow.objects.filter(tenant=ctx.tenant, trigger_job=ctx.job).first()
    if workflow is None:
        workflow = start_workflow(
            tenant=ctx.tenant,
            name=name,
            steps=steps,
            input=input,
            on_end=on_end,
            trigger_job=ctx.job,
        )
    return {"workflow_id": str(workflow.pk)}


@job_kind("workflows.reconcile_workflows", queue="maintenance", max_attempts=1)
def reconcile(ctx: JobContext) -> dict[str, Any]:
    """Settle workflow steps whose job ended unheard (built in: every minute, every tenant)."""
    return {"settled": reconcile_workflows()}
