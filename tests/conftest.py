"""Fixtures shared by every layer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import REQUIRE_ALL, pg_database


def pytest_report_header(config):
    return [f"RADIUSD_TEST_REQUIRE_ALL={'1' if REQUIRE_ALL else '0'} "
            "(1: a missing radclient/chromium/PostgreSQL fails instead of skipping)"]


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database for this session (with its password)."""
    with pg_database() as url:
        yield url
