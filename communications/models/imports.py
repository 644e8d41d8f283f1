"""Models of the imports area (see the area's services for the behaviour)."""

__all__: list[str] = []
