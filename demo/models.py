"""The mark that the demo tenant got its sample data: `make run` seeds it once."""

from django.db import models

from tenants.models import Tenant


class DemoSeed(models.Model):
    """The demo tenant's sample data was created (what, and when); `seed_demo --reset` redoes it."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="demo_seed")
    created_at = models.DateTimeField(auto_now_add=True)
    summary = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"Demo data of {self.tenant_id}, {self.created_at:%Y-%m-%d %H:%M}"
