"""How the Store writes instants to SQLite and reads them back (``_sqlite_instant`` and
``_sqlite_moment``, on the request path): naive UTC text in SQLAlchemy's DATETIME format,
read back as aware UTC, whatever zone the instant came in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from radiusd.store.store import _sqlite_instant, _sqlite_moment

INSTANT = datetime(2026, 12, 3, 5, 25, 11, 123456, tzinfo=UTC)


@pytest.mark.parametrize("value", [
    INSTANT,
    INSTANT.astimezone(ZoneInfo("Europe/Paris")),
    INSTANT.astimezone(timezone(timedelta(hours=-5, minutes=-30))),
])
def test_an_instant_in_any_zone_is_stored_as_naive_utc_text_and_read_back_as_utc(value):
    text = _sqlite_instant(value)
    assert text == "2026-12-03 05:25:11.123456"
    back = _sqlite_moment(text)
    assert back == INSTANT and back.tzinfo is UTC


def test_whole_seconds_keep_their_microseconds_so_text_order_is_time_order():
    whole = INSTANT.replace(microsecond=0)
    assert _sqlite_instant(whole) == "2026-12-03 05:25:11.000000"
    assert _sqlite_instant(whole) < _sqlite_instant(INSTANT)


def test_text_written_by_sqlalchemy_without_microseconds_is_read_too():
    assert _sqlite_moment("2026-12-03 05:25:11") == INSTANT.replace(microsecond=0)
    assert _sqlite_moment(None) is None
