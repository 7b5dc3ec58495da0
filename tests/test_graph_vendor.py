"""Graph as it really behaves (issue 9, item 4): 412s on plain GETs.

The engine runs in-process with an injected clock (as in test_engine.py) against the
HTTPS Graph and Zoom emulators; `status --json` runs as the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import HOUR

from daemon.app import open_engine
from daemon.config import load
from daemon.engine import Engine
from daemon.sandbox.domain import Sandbox

MARY = "mary@example.edu"
PACIFIC = ZoneInfo("America/Los_Angeles")
WEEK = timedelta(days=7)


def weekly_evening_series(sandbox: Sandbox, now: datetime) -> tuple[str, list[datetime]]:
    """Office hours every week at 18:30 Pacific from tomorrow: 01:30 or 02:30 UTC the
    next day, so a cancelled occurrence's date differs in UTC and where it recurs."""
    local = (now.astimezone(PACIFIC) + timedelta(days=1)).replace(hour=18, minute=30,
                                                                  second=0, microsecond=0)
    starts = [local + i * WEEK for i in range(6)]  # same wall time across a DST change
    master = sandbox.graph.add_event(
        MARY, starts[0], starts[0] + HOUR, occurrences=[(s, s + HOUR) for s in starts],
        subject="Office Hours", body={"contentType": "text", "content": "Drop in."},
        originalStartTimeZone="Pacific Standard Time",
        recurrence={"pattern": {"type": "weekly", "interval": 1, "firstDayOfWeek": "sunday",
                                "daysOfWeek": [local.strftime("%A").lower()]},
                    "range": {"type": "noEnd", "startDate": local.date().isoformat(),
                              "recurrenceTimeZone": "Pacific Standard Time"}})
    return master, [s.astimezone(UTC) for s in starts]


@pytest.fixture
def clock(now: datetime) -> list[datetime]:
    return [now]


@pytest.fixture
def engine(sandbox: Sandbox, clock: list[datetime]) -> Iterator[Engine]:
    sandbox.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
    made = open_engine(load(sandbox.write_config(enforce_lead_minutes=15)),
                       clock=lambda: clock[0], sleep=lambda seconds: None)
    yield made
    made.close()


@pytest.mark.parametrize("path", ["/calendarView/delta", "/events/"],
                         ids=["delta-page", "master-get"])
def test_412_on_a_get_is_retried_like_a_503(engine: Engine, sandbox: Sandbox, now: datetime,
                                            path: str) -> None:
    weekly_evening_series(sandbox, now)
    sandbox.graph.inject("412", "GET", path, times=2)
    (mary,) = engine.config.instructors
    result = engine.sync(mary)
    assert result.error is None
    statuses = [r.status for r in sandbox.graph.requests("GET", path)]
    assert statuses[:3] == [412, 412, 200]
    assert not sandbox.graph.queued
    assert sandbox.graph.requests("PATCH")  # the pass went on to link the series


def test_412_on_every_get_attempt_is_an_error_not_a_conflict(
        engine: Engine, sandbox: Sandbox, now: datetime) -> None:
    weekly_evening_series(sandbox, now)
    sandbox.graph.inject("412", "GET", "/calendarView/delta", times=4)
    (mary,) = engine.config.instructors
    result = engine.sync(mary)
    assert result.error is not None
    assert "HTTP 412" in result.error and "ErrorIrresolvableConflict" in result.error
    assert len(sandbox.graph.requests("GET", "/calendarView/delta")) == 4  # bounded
