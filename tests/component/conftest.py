"""Component-test fixtures: databases for the Store, on SQLite and on PostgreSQL.

PostgreSQL: the session's throw-away database (``postgresql_url`` in tests/conftest.py);
every test that uses it starts from an empty ``public`` schema.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from radiusd.store import Store
from support import admin_engine as _admin_engine

DATABASES = ("sqlite", "postgresql")


def empty_postgresql(url: str) -> None:
    """Drop everything in the test database: the next test starts without a schema."""
    engine = _admin_engine(url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path) -> str:
    """An empty database (no schema) on each of SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'radiusd.db'}"
    url = request.getfixturevalue("postgresql_url")
    empty_postgresql(url)
    return url


@pytest.fixture()
def empty_store(database_url) -> Iterator[Store]:
    """A Store on a database without schema."""
    store = Store.open(database_url, pool_size=4)
    yield store
    store.close()


@pytest.fixture()
def store(empty_store) -> Store:
    """A Store on a migrated, empty database."""
    empty_store.migrate()
    return empty_store


@pytest.fixture()
def sqlite_store(tmp_path) -> Iterator[Store]:
    """A Store on a migrated SQLite file (the tests that need only one database)."""
    store = Store.open(f"sqlite:///{tmp_path / 'radiusd.db'}")
    store.migrate()
    yield store
    store.close()
