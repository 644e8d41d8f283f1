"""Who may do what: the role matrix (PRODUCT.md §2), the one list the API and the admin both read.

Each area of the product has a rule: the lowest role that lists and reads its rows, and the
lowest that creates, changes, deletes or acts on them. An API view names its area
(`access_area = "jobs"`: safe methods read, the others write; `access_write = False` for a
POST that only reads, such as a preview); an admin class names it the same way
(`TenantScopedAdminMixin.access_area`), so its changelist, change page, actions and downloads
follow the same rule. Superusers count as owners everywhere. A new area is one line here.
"""

from dataclasses import dataclass

from tenants.models import Role


@dataclass(frozen=True)
class Rule:
    read: str
    write: str
    # Members see only their own rows (a `user` field); superusers see every row.
    own_rows_only: bool = False


MATRIX: dict[str, Rule] = {
    "jobs": Rule(read=Role.VIEWER, write=Role.AGENT),
    "job_discard": Rule(read=Role.VIEWER, write=Role.ADMIN),
    "once_markers": Rule(read=Role.VIEWER, write=Role.ADMIN),  # deleting one lets it happen again
    "messages": Rule(read=Role.VIEWER, write=Role.AGENT),
    "campaigns": Rule(read=Role.VIEWER, write=Role.AGENT),
    "contacts": Rule(read=Role.VIEWER, write=Role.AGENT),
    "contact_transfers": Rule(read=Role.ADMIN, write=Role.ADMIN),  # imports, exports, files
    "templates": Rule(read=Role.VIEWER, write=Role.ADMIN),
    "template_previews": Rule(read=Role.VIEWER, write=Role.VIEWER),
    "schedules": Rule(read=Role.VIEWER, write=Role.ADMIN),
    "webhooks": Rule(read=Role.ADMIN, write=Role.ADMIN),
    "senders": Rule(read=Role.ADMIN, write=Role.ADMIN),  # a tenant's own provider accounts
    "reports": Rule(read=Role.VIEWER, write=Role.ADMIN),
    "statistics": Rule(read=Role.ADMIN, write=Role.ADMIN),  # queues, workers, health, stats
    "notifications": Rule(read=Role.VIEWER, write=Role.VIEWER, own_rows_only=True),
    "tenant": Rule(read=Role.VIEWER, write=Role.OWNER),  # the tenant's own settings, limits
    "memberships": Rule(read=Role.VIEWER, write=Role.OWNER),
    "workflows": Rule(read=Role.VIEWER, write=Role.AGENT),
    "automations": Rule(read=Role.VIEWER, write=Role.ADMIN),
    "alerts": Rule(read=Role.ADMIN, write=Role.ADMIN),  # a tenant's rules and incidents
    "digests": Rule(read=Role.VIEWER, write=Role.VIEWER),  # each member's own daily digest
    # Keys: admins make and manage their own; the owner manages everyone's (tenants.admin).
    "api_keys": Rule(read=Role.VIEWER, write=Role.ADMIN, own_rows_only=True),
}


def rule(area: str) -> Rule:
    try:
        return MATRIX[area]
    except KeyError:
        raise KeyError(f"No area {area!r} in tenants.access.MATRIX.") from None


def required_role(area: str, *, write: bool = False) -> str:
    """The lowest role that may read (or, with `write`, change) rows of `area`."""
    found = rule(area)
    return found.write if write else found.read


def allows(role: str | None, area: str, *, write: bool = False) -> bool:
    """Whether `role` (None: not a member) may read or change rows of `area`."""
    if role is None:
        return False
    return Role.rank(role) >= Role.rank(required_role(area, write=write))
