"""The Store at the process's descriptor limit (EMFILE), on PostgreSQL: the driver's
OSError becomes StoreUnavailable, which the server logs as one "database unreachable"
line and answers nothing, instead of an "Unhandled error in Deferred" traceback."""

from __future__ import annotations

import contextlib
import os
import resource
from datetime import UTC, datetime

import pytest
from radiusd.errors import StoreUnavailable
from radiusd.store import Store

from component.conftest import empty_postgresql


@contextlib.contextmanager
def _one_descriptor_left():
    """Lower the soft RLIMIT_NOFILE to one above the lowest free descriptor: libpq gets
    its socket, and psycopg's selector for it fails with EMFILE (an OSError, not a
    driver error). Restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    probe = os.open(os.devnull, os.O_RDONLY)
    os.close(probe)
    resource.setrlimit(resource.RLIMIT_NOFILE, (probe + 1, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture()
def pg_store(postgresql_url):
    empty_postgresql(postgresql_url)
    store = Store.open(postgresql_url, pool_size=2)
    store.migrate()
    store.close()
    store = Store.open(postgresql_url, pool_size=2)   # no connection open yet
    yield store
    store.close()


def test_too_many_open_files_on_the_request_path_is_an_unavailable_database(pg_store):
    """Issue 21 (13)."""
    with _one_descriptor_left(), pytest.raises(StoreUnavailable) as raised:
        pg_store.prune_receipts(datetime.now(UTC))
    assert "too many open files" in str(raised.value)
    assert pg_store.prune_receipts(datetime.now(UTC)) == 0   # descriptors again: it works


def test_too_many_open_files_on_the_admin_path_is_an_unavailable_database(pg_store):
    """Issue 21 (13)."""
    with _one_descriptor_left(), pytest.raises(StoreUnavailable) as raised:
        pg_store.load_settings()
    assert "too many open files" in str(raised.value)
    pg_store.load_settings()
