from django.apps import AppConfig


class CommunicationsConfig(AppConfig):
    name = "communications"

    def ready(self) -> None:
        from communications.services.messages import settle_message_job  # noqa: PLC0415
        from communications.services.webhooks import publish_job_event  # noqa: PLC0415
        from jobs.signals import job_finished  # noqa: PLC0415

        # jobs knows nothing of webhooks: finished jobs reach them through this signal.
        job_finished.connect(publish_job_event, dispatch_uid="communications.webhooks.job_events")
        # A send job that ends without settling its message (canceled, or its worker died).
        job_finished.connect(settle_message_job, dispatch_uid="communications.messages.jobs")
