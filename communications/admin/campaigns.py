"""Admin: campaigns with their progress, and actions to start and cancel them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from communications.models import Campaign
from communications.selectors.campaigns import campaigns_totals
from communications.services.campaigns import cancel_campaign, create_campaign, start_campaign
from config.exceptions import DomainError
from tenants.admin import TenantScopedAdminMixin

EDITABLE = ("tenant", "name", "channel", "template", "contact_ids", "tags", "variables", "send_at")


@admin.register(Campaign)
class CampaignAdmin(TenantScopedAdminMixin):
    """Drafts are added here and started by an action (or scheduled by giving a send time, read
    in the tenant's time zone); started campaigns are read-only."""

    access_area = "campaigns"
    list_display = ("name", "tenant", "channel", "template", "status", "progress", "created_at")
    list_filter = ("status", "channel", "tenant")
    list_select_related = ("tenant",)
    search_fields = ("name", "template")
    ordering = ("-created_at",)
    actions = ["start_selected", "cancel_selected"]
    fields = (
        *EDITABLE,
        "status",
        "progress",
        "created_by",
        "job",
        "batch",
        "created_at",
        "started_at",
        "finished_at",
        "cancel_requested_at",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        done = tuple(name for name in self.fields if name not in EDITABLE)
        return (*EDITABLE, *done) if obj is not None else done

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        changelist = super().get_changelist_instance(request)
        # One grouped count for the page's running campaigns, kept on the rows shown.
        page = list(changelist.result_list)
        for campaign, totals in zip(page, campaigns_totals(page).values(), strict=True):
            campaign.page_totals = totals
        return changelist

    @admin.display(description="progress")
    def progress(self, campaign: Campaign) -> SafeString | str:
        if campaign.pk is None:
            return "-"
        totals = getattr(campaign, "page_totals", None) or campaigns_totals([campaign])[campaign.pk]
        done = totals["recipients"] - totals["pending"]
        percent = done * 100 // totals["recipients"] if totals["recipients"] else 0
        return format_html(
            '<span class="cv-progress"><progress max="100" value="{}">{} %</progress>'
            '<span class="quiet">{} sent · {} failed · {} skipped · {} canceled · {} to go'
            "</span></span>",
            percent,
            percent,
            f"{totals['sent']:,}",
            f"{totals['failed']:,}",
            f"{totals['skipped']:,}",
            f"{totals['canceled']:,}",
            f"{totals['pending']:,}",
        )

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        self.check_tenant(request, obj)
        if change:
            return
        # The admin reads the time in UTC; the wall-clock time given is meant in the tenant's zone.
        send_at = obj.send_at.replace(tzinfo=None) if obj.send_at else None
        campaign = create_campaign(
            tenant=obj.tenant,
            name=obj.name,
            channel=obj.channel,
            template=obj.template,
            contact_ids=obj.contact_ids,
            tags=obj.tags,
            variables=obj.variables,
            by=request.user,
            start=send_at is not None,  # scheduled at once; without a time, a draft
            send_at=send_at,
        )
        obj.pk, obj.created_at, obj.status = campaign.pk, campaign.created_at, campaign.status

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status == Campaign.Status.RUNNING:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(
        self, request: HttpRequest, action_location: ActionLocation = ActionLocation.CHANGE_LIST
    ) -> dict[str, Any]:
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # a running campaign is never deleted under its jobs
        return actions

    @admin.action(description="Start selected draft campaigns")
    def start_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        drafts = list(
            self.editable_queryset(request, queryset).filter(status=Campaign.Status.DRAFT)
        )
        for campaign in drafts:
            start_campaign(campaign, by=request.user)
        self.message_user(request, f"Started {len(drafts)} campaign(s).")

    @admin.action(description="Cancel selected campaigns")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        active = self.editable_queryset(request, queryset).filter(
            status__in=[Campaign.Status.DRAFT, Campaign.Status.SCHEDULED, Campaign.Status.RUNNING]
        )
        canceled = 0
        for campaign in active:
            try:
                cancel_campaign(campaign, by=request.user)
            except DomainError as error:
                self.message_user(request, str(error), level=messages.WARNING)
                continue
            canceled += 1
        self.message_user(request, f"Canceled {canceled} campaign(s).")
