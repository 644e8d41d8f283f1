from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        # Every app's tasks.py registers its kinds with @job_kind.
        autodiscover_modules("tasks")
