"""Errors a job body raises to steer the runner, and errors services raise to callers."""

from config.exceptions import DomainError, TooSoon


class PermanentError(Exception):
    """The job cannot succeed however often it runs (bad input, a provider's 4xx): fail now."""


class RetryableError(Exception):
    """A passing failure (timeout, 5xx, connection): retry, after `delay` seconds if given."""

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Snooze(Exception):
    """Raised by `JobContext.snooze(seconds)`: run again later without using an attempt."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"snoozed for {seconds:g} s")
        self.seconds = seconds


class JobCanceled(Exception):
    """Raised by `JobContext.stop_if_canceled()` once a cancel was requested."""


class UnknownKind(LookupError):
    """No job kind is registered under that name."""


class InvalidTransition(DomainError):
    """The job's status does not allow what was asked (e.g. cancelling a finished job)."""


class UnknownQueue(DomainError):
    """No queue of that name is configured."""


class Throttled(TooSoon):
    """An enqueue within a throttle window: at most one job per key per window."""
