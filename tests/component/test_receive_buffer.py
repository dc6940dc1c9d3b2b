"""The RADIUS socket's receive buffer: large enough for a burst (``app.enlarge_receive_buffer``).

The whole effect, 2,000 requests at once and none dropped, is checked over real UDP in
``tests/system/test_radius_server.py``; here, what happens when the kernel grants less.
"""

from __future__ import annotations

import errno
import os
import socket

from twisted.logger import LogLevel, capturedLogs, formatEvent

from radiusd.app import (RECEIVE_BUFFER, SO_RCVBUFFORCE, enlarge_receive_buffer,
                         size_receive_buffer)


class _Unprivileged(socket.socket):
    """A socket whose owner lacks CAP_NET_ADMIN: SO_RCVBUFFORCE is refused."""

    def setsockopt(self, level, option, value, *args):
        if level == socket.SOL_SOCKET and option == SO_RCVBUFFORCE:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return super().setsockopt(level, option, value, *args)


class _Stingy(socket.socket):
    """A kernel that keeps its default whatever is asked."""

    def setsockopt(self, level, option, value, *args):
        if level == socket.SOL_SOCKET and option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return super().setsockopt(level, option, value, *args)


def _rmem_max() -> int:
    with open("/proc/sys/net/core/rmem_max") as limit:
        return int(limit.read())


def test_the_buffer_is_forced_with_the_privilege_and_capped_by_rmem_max_without():
    wanted = _rmem_max() * 2   # beyond what an unprivileged process may ask for
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        granted = enlarge_receive_buffer(sock, wanted)
        assert granted == sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if os.geteuid() == 0:   # CI runs as root: forced past net.core.rmem_max
            assert granted >= wanted
    with _Unprivileged(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        default = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        granted = enlarge_receive_buffer(sock, wanted)
        # SO_RCVBUF instead: the kernel's cap, doubled for its bookkeeping.
        assert granted == sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert granted == max(default, 2 * _rmem_max())


def test_a_buffer_smaller_than_asked_for_is_logged_with_the_remedy():
    with _Stingy(socket.AF_INET, socket.SOCK_DGRAM) as sock, capturedLogs() as events:
        granted = size_receive_buffer(sock, "127.0.0.1:1812")
    assert granted < RECEIVE_BUFFER
    [warning] = [event for event in events if event["log_level"] == LogLevel.warn]
    text = formatEvent(warning)
    assert "127.0.0.1:1812" in text and f"receive buffer {granted} bytes" in text
    assert f"net.core.rmem_max={RECEIVE_BUFFER}" in text
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, capturedLogs() as events:
        if os.geteuid() == 0:
            assert size_receive_buffer(sock, "127.0.0.1:1812") >= RECEIVE_BUFFER
            assert not [event for event in events if event["log_level"] == LogLevel.warn]
