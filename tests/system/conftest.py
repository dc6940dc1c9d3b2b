"""System-test fixtures: a real ``radiusd serve`` process per module."""

from __future__ import annotations

import pytest

from support import ServerProcess, free_udp_port, write_server_config

SECRET = "system-test-secret-7d1c9a"  # noqa: S105 (test value)


def pytest_collection_modifyitems(items):
    for item in items:
        if "/system/" in str(item.fspath):
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> ServerProcess:
    """A server with the default policy; each test uses its own user names."""
    directory = tmp_path_factory.mktemp("radiusd")
    port = free_udp_port()
    config = write_server_config(directory, port=port, secret=SECRET, reject_delay="0.2s",
                                 extra="""
[[clients]]
name = "legacy-nas"
address = "127.0.0.2"
secret = "legacy-nas-secret-0123456789"
require_message_authenticator = false
""")
    proc = ServerProcess(directory=directory, port=port, secret=SECRET, config=config,
                         log_path=directory / "radiusd.log")
    proc.start()
    yield proc
    proc.stop()
