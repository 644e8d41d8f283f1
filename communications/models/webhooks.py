"""Models of the webhooks area (see the area's services for the behaviour)."""

__all__: list[str] = []
