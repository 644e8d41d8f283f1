"""Test settings: the real services of settings.py, with a fast hasher and locmem email."""

import os

os.environ.setdefault("CONVEYOR_ENV", "test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SMS_PROVIDER", "memory")
os.environ.setdefault("WHATSAPP_PROVIDER", "memory")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
MEDIA_ROOT = VAR_DIR / "test-media"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"user": "100000/min", "tenant": "100000/min"}  # noqa: F405
# No test reaches AWS: boto3 calls a closed local port unless a test points it at its fake.
CONVEYOR_AWS_ENDPOINT_URL = "http://127.0.0.1:9"
