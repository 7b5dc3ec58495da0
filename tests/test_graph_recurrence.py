"""Graph's patternedRecurrence and Windows zone names, mapped and expanded locally."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.calendars.graph_recurrence import exdates, iana_zone, rrule
from daemon.model import Event, Kind
from daemon.recurrence import sessions


def pattern(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "interval": fields.pop("interval", 1), **fields}


CASES = [
    # (windows zone, first local start, pattern, range, expected local dates)
    ("Pacific Standard Time", datetime(2026, 10, 30, 9),  # US DST ends Nov 1
     pattern("daily", interval=2), {"type": "endDate", "endDate": "2026-11-05"},
     ["2026-10-30", "2026-11-01", "2026-11-03", "2026-11-05"]),
    ("W. Europe Standard Time", datetime(2026, 10, 19, 10),  # EU DST ends Oct 25
     pattern("weekly", daysOfWeek=["monday", "wednesday"], firstDayOfWeek="monday"),
     {"type": "numbered", "numberOfOccurrences": 4},
     ["2026-10-19", "2026-10-21", "2026-10-26", "2026-10-28"]),
    ("AUS Eastern Standard Time", datetime(2026, 9, 15, 14),  # Sydney DST starts Oct 4
     pattern("absoluteMonthly", dayOfMonth=15), {"type": "noEnd"},
     ["2026-09-15", "2026-10-15", "2026-11-15"]),
    ("Eastern Standard Time", datetime(2026, 9, 25, 16),
     pattern("relativeMonthly", daysOfWeek=["friday"], index="last"), {"type": "noEnd"},
     ["2026-09-25", "2026-10-30", "2026-11-27"]),
    ("GMT Standard Time", datetime(2026, 3, 10, 11),
     pattern("absoluteYearly", month=3, dayOfMonth=10), {"type": "numbered",
                                                         "numberOfOccurrences": 2},
     ["2026-03-10", "2027-03-10"]),
    ("Central Standard Time", datetime(2026, 9, 7, 13),
     pattern("relativeYearly", month=9, daysOfWeek=["monday"], index="first"),
     {"type": "noEnd"}, ["2026-09-07", "2027-09-06"]),
    ("Pacific Standard Time", datetime(2026, 10, 26, 9),
     pattern("weekly", interval=2, daysOfWeek=["monday"]),
     {"type": "endDate", "endDate": "2026-11-23"}, ["2026-10-26", "2026-11-09", "2026-11-23"]),
]


@pytest.mark.parametrize(("windows", "first", "shape", "span", "expected"), CASES,
                         ids=[f"{c[2]['type']}-{c[1]:%m%d}" for c in CASES])
def test_pattern_expands_at_the_same_local_time(windows: str, first: datetime,
                                                shape: dict[str, Any], span: dict[str, Any],
                                                expected: list[str]) -> None:
    zone = iana_zone(windows)
    local = first.replace(tzinfo=ZoneInfo(zone))
    line = rrule({"pattern": shape, "range": {**span, "startDate": f"{first:%Y-%m-%d}"}}, zone)
    series = Event("s", Kind.SERIES, start=local.astimezone(UTC),
                   end=local.astimezone(UTC) + timedelta(hours=1), timezone=zone,
                   recurrence=(line,))
    found = sessions([series], now=local - timedelta(hours=1),
                     horizon=datetime(2027, 12, 31, tzinfo=UTC) - local)
    found = [s for s in found if s.start.astimezone(ZoneInfo(zone)).date()
             <= date.fromisoformat(expected[-1])]
    local_starts = [s.start.astimezone(ZoneInfo(zone)) for s in found]
    assert [f"{s:%Y-%m-%d}" for s in local_starts] == expected
    assert {s.time() for s in local_starts} == {first.time()}  # across the DST change
    offsets = {s.utcoffset() for s in local_starts}
    if windows in ("Pacific Standard Time", "W. Europe Standard Time",
                   "AUS Eastern Standard Time"):
        assert len(offsets) == 2, "the case is meant to cross a DST change"


@pytest.mark.parametrize(("name", "expected"), [
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("Europe/Paris", "Europe/Paris"),
    ("UTC", "Etc/UTC"),
    ("Customized Time Zone", "UTC"),
    (None, "UTC"),
])
def test_zone_names(name: str | None, expected: str) -> None:
    assert iana_zone(name) == expected


def test_cancelled_occurrences_become_exdates() -> None:
    zone = "America/Los_Angeles"
    first = datetime.combine(date(2026, 11, 2), time(9), ZoneInfo(zone))
    lines = exdates(["OID.AAMkAD1=.2026-11-04", "garbage"], first, zone)
    assert lines == ["EXDATE;TZID=America/Los_Angeles:20261104T090000"]
    series = Event("s", Kind.SERIES, start=first, end=first + timedelta(hours=1),
                   timezone=zone, recurrence=("RRULE:FREQ=DAILY;COUNT=3", *lines))
    days = [s.start.astimezone(ZoneInfo(zone)).day
            for s in sessions([series], first - timedelta(hours=1), timedelta(days=5))]
    assert days == [2, 3]


def test_unknown_pattern_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown recurrence pattern"):
        rrule({"pattern": {"type": "lunar"}, "range": {"type": "noEnd"}}, "UTC")
