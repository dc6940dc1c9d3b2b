"""Fixtures shared by every layer."""

from __future__ import annotations

import pytest

from support import REQUIRE_ALL


def pytest_report_header(config):
    return [f"RADIUSD_TEST_REQUIRE_ALL={'1' if REQUIRE_ALL else '0'} "
            "(1: a missing radclient/chromium/PostgreSQL fails instead of skipping)"]
