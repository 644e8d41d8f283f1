"""Rate strings such as "10/s" or "600/m", as written in settings and tenant overrides."""

_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PERIODS |= {"h": 3600.0, "hour": 3600.0}


def parse_rate(rate: object) -> tuple[int, float]:
    """(count, period in seconds) for "N/s", "N/m" or "N/h"; a ValueError says what is wrong."""
    if not isinstance(rate, str) or "/" not in rate:
        raise ValueError(f"{rate!r} is not a rate: write it as N/s, N/m or N/h, e.g. 10/s.")
    count_text, unit = (part.strip() for part in rate.split("/", 1))
    if not count_text.isdigit() or int(count_text) < 1:
        raise ValueError(f"{rate!r}: the count must be a whole number of at least 1.")
    if unit not in _PERIODS:
        raise ValueError(f"{rate!r}: the period must be s, m or h.")
    return int(count_text), _PERIODS[unit]
