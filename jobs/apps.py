from django.apps import AppConfig
from django.db.models.signals import post_save
from django.utils.module_loading import autodiscover_modules

from jobs.log_context import install_record_factory


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        # Log lines written inside a job carry its id, kind, tenant and attempt.
        install_record_factory()
        # Every app's tasks.py registers its kinds with @job_kind.
        autodiscover_modules("tasks")
        # A tenant's weight and paused queues live in Redis too, where workers read them.
        from jobs.services.dispatch import on_tenant_saved
        from tenants.models import Tenant

        post_save.connect(on_tenant_saved, sender=Tenant, dispatch_uid="jobs.dispatch")
