"""Python ``logging`` records (psycopg's own) reach twisted.logger, so they carry the
timestamp and namespace of every other line (issue 21, 13)."""

from __future__ import annotations

import logging

from twisted.logger import LogLevel, LogPublisher, formatEvent

from radiusd.app import StdlibToTwistedLog


def test_a_psycopg_warning_becomes_a_twisted_log_event_not_a_bare_stderr_line(capsys):
    """Issue 21 (13): psycopg wrote untimestamped lines through logging's last resort."""
    events: list[dict] = []
    publisher = LogPublisher(events.append)
    handler = StdlibToTwistedLog(publisher)
    logger = logging.getLogger("psycopg")
    logger.addHandler(handler)
    try:
        logger.warning("error ignored in rollback on %s: %s", "<connection>", "bad")
        logger.info("below the handler's level: dropped")
    finally:
        logger.removeHandler(handler)
    assert [(e["log_namespace"], e["log_level"], formatEvent(e)) for e in events] == [
        ("psycopg", LogLevel.warn, "error ignored in rollback on <connection>: bad")]
    assert capsys.readouterr().err == ""
