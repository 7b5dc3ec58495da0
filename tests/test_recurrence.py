"""Upcoming sessions: local expansion in the event's own zone, across DST, with exceptions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.model import Event, Kind
from daemon.recurrence import sessions

LA, BERLIN = ZoneInfo("America/Los_Angeles"), ZoneInfo("Europe/Berlin")


def series(start: datetime, *rules: str, zone: ZoneInfo = LA) -> Event:
    return Event("s", Kind.SERIES, start=start, end=start + timedelta(hours=1),
                 timezone=zone.key, recurrence=rules)


@pytest.mark.parametrize(("zone", "first", "after_dst"), [
    (LA, datetime(2026, 10, 26, 10, tzinfo=LA), datetime(2026, 11, 2, 18, tzinfo=UTC)),
    (BERLIN, datetime(2026, 10, 19, 10, tzinfo=BERLIN), datetime(2026, 10, 26, 9, tzinfo=UTC)),
])
def test_weekly_series_keeps_local_time_across_dst(zone: ZoneInfo, first: datetime,
                                                   after_dst: datetime) -> None:
    found = sessions([series(first, "RRULE:FREQ=WEEKLY", zone=zone)],
                     now=first - timedelta(hours=1), horizon=timedelta(days=10))
    assert [s.start.astimezone(zone).hour for s in found] == [10, 10]
    assert found[1].start == after_dst


def test_exception_replaces_its_occurrence_and_cancellation_removes_one() -> None:
    first = datetime(2026, 11, 2, 10, tzinfo=LA)
    moved = Event("x", Kind.EXCEPTION, series_id="s", original_start=first + timedelta(days=7),
                  start=first + timedelta(days=8, hours=5), end=first + timedelta(days=8, hours=6))
    gone = Event("c", Kind.CANCELLED, series_id="s", original_start=first + timedelta(days=14))
    found = sessions([series(first, "RRULE:FREQ=WEEKLY;COUNT=4"), moved, gone],
                     now=first - timedelta(hours=1), horizon=timedelta(days=60))
    assert [(s.event_id, s.start.astimezone(LA).day) for s in found] == [
        ("s", 2), ("x", 10), ("s", 23)]


def test_until_in_utc_exdate_and_rdate() -> None:
    first = datetime(2026, 11, 2, 10, tzinfo=LA)
    rules = ("RRULE:FREQ=DAILY;UNTIL=20261105T180000Z",
             "EXDATE;TZID=America/Los_Angeles:20261103T100000",
             "RDATE;TZID=America/Los_Angeles:20261110T100000")
    found = sessions([series(first, *rules)], now=first - timedelta(hours=1),
                     horizon=timedelta(days=30))
    assert [s.start.astimezone(LA).day for s in found] == [2, 4, 5, 10]


def test_session_under_way_is_included_and_past_ones_are_not() -> None:
    now = datetime(2026, 11, 2, 10, 30, tzinfo=LA)
    single = Event("one", Kind.SINGLE, start=now - timedelta(minutes=30),
                   end=now + timedelta(minutes=30))
    past = Event("past", Kind.SINGLE, start=now - timedelta(hours=3),
                 end=now - timedelta(hours=2))
    assert [s.event_id for s in sessions([single, past], now, timedelta(days=1))] == ["one"]


def test_all_day_and_unknown_zone_and_broken_rule_do_not_crash() -> None:
    now = datetime(2026, 11, 2, tzinfo=UTC)
    all_day = Event("d", Kind.SINGLE, start=date(2026, 11, 3), end=date(2026, 11, 4))
    odd_zone = Event("z", Kind.SERIES, start=datetime(2026, 11, 3, 9, tzinfo=UTC),
                     timezone="Mars/Olympus_Mons", recurrence=("RRULE:FREQ=DAILY;COUNT=2",))
    broken = series(datetime(2026, 11, 3, 9, tzinfo=LA), "RRULE:FREQ=SOMETIMES")
    found = sessions([all_day, odd_zone, broken], now, timedelta(days=7))
    assert [s.event_id for s in found] == ["d", "z", "z"]
