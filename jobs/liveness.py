"""A worker process's sign of life for its supervisor: one shared timestamp.

The supervisor (`jobs.runtime.supervisor`) maps a page shared with the worker process it forks;
a thread of the worker sets it twice a second while the worker is responsive. A job that holds
the interpreter (a long C call) or outlives its timeout and grace stops the beats, and the
supervisor stops the process. Outside a supervisor every call here does nothing.
"""

import mmap
import struct
import time

_FORMAT = "d"
_shared: mmap.mmap | None = None


def share() -> None:
    """Map the shared page (in the supervisor, before it forks the worker)."""
    global _shared
    if _shared is None:
        _shared = mmap.mmap(-1, struct.calcsize(_FORMAT))
    beat()


def shared() -> bool:
    """Whether this process runs under a supervisor that watches the page."""
    return _shared is not None


def beat() -> None:
    """The worker is responsive now."""
    if _shared is not None:
        _shared[:] = struct.pack(_FORMAT, time.monotonic())


def silent_for() -> float:
    """Seconds since the last beat (0 outside a supervisor)."""
    if _shared is None:
        return 0.0
    (last,) = struct.unpack(_FORMAT, _shared[:])
    return time.monotonic() - last
