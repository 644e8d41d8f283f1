"""Django's password-reset flow, its email made from the user's tenant's `password-reset`
template and sent through that tenant's email sender.

The link is a credential: it is sent at once and never stored (no `Message` row, no job
payload), so no tenant admin can read another member's reset link. A user of no tenant gets
Django's own email.
"""

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.urls import URLPattern, path, reverse, reverse_lazy

from communications.models import Channel
from communications.providers import Outgoing, SendError
from communications.secrets import UnreadableSecret
from communications.services.senders import route_for
from communications.services.templates import render_template
from communications.template_engine import user_variables
from tenants.models import Membership

logger = logging.getLogger(__name__)


class TemplatePasswordResetForm(auth_forms.PasswordResetForm):
    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        user: User = context["user"]
        membership = (
            Membership.objects.filter(user=user, tenant__is_active=True)
            .select_related("tenant")
            .order_by("created_at", "pk")
            .first()
        )
        if membership is None:
            super().send_mail(
                subject_template_name,
                email_template_name,
                context,
                from_email,
                to_email,
                html_email_template_name,
            )
            return
        tenant = membership.tenant
        confirm = reverse(
            "password_reset_confirm", kwargs={"uidb64": context["uid"], "token": context["token"]}
        )
        hours = settings.PASSWORD_RESET_TIMEOUT // 3600
        rendered = render_template(
            "password-reset",
            tenant=tenant,
            channel=Channel.EMAIL,
            context={
                "user": user_variables(user),
                "reset_url": f"{context['protocol']}://{context['domain']}{confirm}",
                "expires_in": f"{hours} hours",
            },
        )
        outgoing = Outgoing(
            channel=Channel.EMAIL,
            to=to_email,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            reference=f"password-reset-{user.pk}",
        )
        try:
            route_for(tenant, Channel.EMAIL).client.send(outgoing)
        except (SendError, UnreadableSecret):
            logger.exception("tenant=%s: the password-reset email could not be sent", tenant.pk)


urlpatterns: list[URLPattern] = [
    path(
        "admin/password_reset/",
        auth_views.PasswordResetView.as_view(
            form_class=TemplatePasswordResetForm,
            success_url=reverse_lazy("password_reset_done"),
        ),
        name="admin_password_reset",
    ),
    path(
        "admin/password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]
