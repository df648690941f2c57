"""The chaos tests run the same fleet as the end-to-end tests."""

from tests.e2e.conftest import fleet  # noqa: F401
