"""Settings for a `manage.py rqworker` process in tests/jobs/test_tasks_backend.py.

The test settings, with Conveyor as Django's task backend and a narrow allow-list, so the
worker shows which task paths it imports and which it refuses.
"""

from config.test_settings import *  # noqa: F403

TASKS = {
    "default": {
        "BACKEND": "jobs.tasks_backend.ConveyorBackend",
        "QUEUES": ["default", "email"],
        "OPTIONS": {"TASKS": ["tests.jobs.django_tasks.add"], "DEFAULT_TENANT": "acme"},
    }
}
