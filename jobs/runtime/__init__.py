"""The engine's processes, above its services: the runner every job goes through, the worker
classes, the reconciler and the scheduler loop."""
