"""Log lines that clients can cause are rate-limited (issue 15): a flood of bad requests
cannot fill the disk."""

from __future__ import annotations

import logging

import pytest

from birthdays import ratelog


def test_a_burst_is_logged_then_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr("birthdays.ratelog.time.monotonic", lambda: now[0])
    limited = ratelog.RateLimited(logging.getLogger("birthdays.test"), per=10.0, burst=3)
    with caplog.at_level(logging.WARNING, logger="birthdays.test"):
        for i in range(100):
            limited.warning("bad request %d", i)
        assert [r.getMessage() for r in caplog.records] == [
            "bad request 0",
            "bad request 1",
            "bad request 2",
        ]
        now[0] += 10.0
        limited.warning("bad request %d", 100)
    assert [r.getMessage() for r in caplog.records][3:] == [
        "97 similar log lines left out in 10 s",
        "bad request 100",
    ]
