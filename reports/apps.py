from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"

    def ready(self) -> None:
        from jobs.signals import job_finished  # noqa: PLC0415
        from reports.services import settle_report_job  # noqa: PLC0415

        # A report whose job ended without building it (canceled, or its worker died) is failed.
        job_finished.connect(settle_report_job, dispatch_uid="reports.generate_report.jobs")
