"""``DropLimiter``: which drops are logged in full and what the minute's summary counts
(issue 21, 9)."""

from __future__ import annotations

from radiusd.droplog import DropLimiter, DropSummary


def test_a_few_drops_are_all_logged_and_a_new_window_logs_again():
    """Issue 21 (9): up to ``full`` drops a window are logged, and no summary is due; a
    window begins again once the last one is over."""
    limiter = DropLimiter(full=5, window=60.0)
    assert [limiter.note("192.0.2.9", "unknown client", t) for t in range(5)] == [True] * 5
    assert not limiter.pending
    assert limiter.note("192.0.2.9", "unknown client", 30) is False
    assert limiter.flush_due() == 60.0
    assert limiter.flush(60.0) == [DropSummary("192.0.2.9", "unknown client", 1, 60.0)]
    assert limiter.note("192.0.2.9", "unknown client", 61) is True
    assert [limiter.note("192.0.2.9", "unknown client", 200 + t) for t in range(5)] == \
        [True] * 5                                 # 61 s + 60 s over: a new window


def test_the_table_is_capped_and_the_rest_counted_together_per_reason():
    """Issue 21 (9): beyond ``max_tracked`` (source, reason) pairs nothing more is held;
    those drops are counted per reason."""
    limiter = DropLimiter(full=1, total_full=1000, max_tracked=3)
    for index in range(10):
        limiter.note(f"192.0.2.{index}", "unknown client", 0)
    limiter.note("192.0.2.200", "malformed packet", 0)
    assert limiter.tracked == 3
    assert sorted(limiter.flush(60), key=repr) == sorted(
        [DropSummary(None, "unknown client", 7, 60), DropSummary(None, "malformed packet", 1, 60)],
        key=repr)
    assert limiter.tracked == 0 and not limiter.pending
