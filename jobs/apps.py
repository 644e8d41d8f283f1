from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

from jobs.log_context import install_record_factory


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        # Log lines written inside a job carry its id, kind, tenant and attempt.
        install_record_factory()
        # Every app's tasks.py registers its kinds with @job_kind.
        autodiscover_modules("tasks")
