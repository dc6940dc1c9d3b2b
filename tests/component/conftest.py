"""Component-test fixtures: databases for the Store, on SQLite and on PostgreSQL.

PostgreSQL: one throw-away database per test session (``radiusd_test_<random>``) on the
server named by ``RADIUSD_TEST_PG``, dropped at the end; every test that uses it starts from
an empty ``public`` schema. An unreachable server skips those tests, and fails them under
``RADIUSD_TEST_REQUIRE_ALL=1``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from radiusd.store import Store
from support import missing_part

PG_SERVER = os.environ.get("RADIUSD_TEST_PG",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DATABASES = ("sqlite", "postgresql")


def _admin_engine(url):
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                         connect_args={"connect_timeout": 3})


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database for this session (with its password)."""
    server = make_url(PG_SERVER)
    shown = server.render_as_string(hide_password=True)
    name = f"radiusd_test_{secrets.token_hex(6)}"
    admin = _admin_engine(server)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except DBAPIError as exc:
        admin.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        missing_part(f"PostgreSQL not reachable at {shown}: start it or set RADIUSD_TEST_PG "
                     f"({reason})")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


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
