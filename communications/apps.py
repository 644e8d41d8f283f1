from django.apps import AppConfig


class CommunicationsConfig(AppConfig):
    name = "communications"

    def ready(self) -> None:
        from communications.services.webhooks import publish_job_event
        from jobs.signals import job_finished

        # jobs knows nothing of webhooks: every finished job reaches them through this signal.
        job_finished.connect(publish_job_event, dispatch_uid="communications.webhooks.job_events")
