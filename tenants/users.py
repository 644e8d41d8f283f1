"""Who asked for a change: the acting user every service takes as `by=` and records."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

# What views, admin actions, commands and jobs pass as `by=`: a user, the anonymous user of an
# unauthenticated request, or no one (the system itself).
Actor = AbstractBaseUser | AnonymousUser | None


def acting_user(by: Actor) -> User | None:
    """`by` when it is a saved user, else None: what a `created_by` column records."""
    return by if isinstance(by, User) and by.pk is not None else None
