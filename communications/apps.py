from django.apps import AppConfig


class CommunicationsConfig(AppConfig):
    name = "communications"

    def ready(self) -> None:
        from communications.services.notifications import welcome_member
        from communications.services.webhooks import publish_job_event
        from jobs.signals import job_finished
        from tenants.signals import member_added

        # jobs knows nothing of webhooks: every finished job reaches them through this signal.
        job_finished.connect(publish_job_event, dispatch_uid="communications.webhooks.job_events")
        # tenants knows nothing of messaging: a new member is welcomed through this signal.
        member_added.connect(welcome_member, dispatch_uid="communications.welcome_member")
