"""Reading what alerts did, for the tests."""

from django.contrib.auth.models import User

from alerts.models import AlertRule, Incident
from communications.models import Notification


def notices(incident: Incident) -> list[tuple[str, str, str]]:
    """(event, channel, username or URL) of each notice, in order."""
    return [
        (n.event, n.channel, n.user.username if n.user else n.url)
        for n in incident.notices.select_related("user").order_by("pk")
    ]


def titles(user: User) -> list[str]:
    return list(
        Notification.objects.filter(user=user).order_by("pk").values_list("title", flat=True)
    )


def only_incident(rule: AlertRule) -> Incident:
    [incident] = Incident.objects.filter(rule=rule)
    return incident
