"""Fixtures of the communications tests: a local fake of the providers' APIs."""

from tests.communications.provider_fakes import fake_provider  # noqa: F401 (a fixture)
