"""A bare function for the plain-RQ baseline."""


def noop() -> None:
    """Do nothing."""
