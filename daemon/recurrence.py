"""Upcoming office-hours sessions from series, exceptions and single events.

Series are expanded with icalendar + recurring-ical-events in the event's own zone, so
DST shifts land where the instructor expects them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events

from .model import Event, Kind

log = logging.getLogger(__name__)
DEFAULT_LENGTH = timedelta(hours=1)


@dataclass(frozen=True, order=True)
class Session:
    start: datetime
    end: datetime
    event_id: str


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _aware(value: datetime | date, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    return datetime.combine(value, time(), tzinfo=zone)


def _key(value: datetime | date | None, zone: ZoneInfo) -> float | None:
    return None if value is None else _aware(value, zone).timestamp()


def _expand(series: Event, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    assert series.start is not None
    zone = _zone(series.timezone)
    if isinstance(series.start, datetime):
        first = series.start.astimezone(zone)
        dtstart = f"DTSTART;TZID={zone.key}:{first:%Y%m%dT%H%M%S}"
    else:
        dtstart = f"DTSTART;VALUE=DATE:{series.start:%Y%m%d}"
    length = DEFAULT_LENGTH
    if series.end is not None:
        length = _aware(series.end, zone) - _aware(series.start, zone)
    lines = ["BEGIN:VCALENDAR", "BEGIN:VEVENT", f"UID:{series.id}", dtstart,
             *series.recurrence, "END:VEVENT", "END:VCALENDAR"]
    calendar = icalendar.Calendar.from_ical("\r\n".join(lines) + "\r\n")
    found = []
    for occurrence in recurring_ical_events.of(calendar).between(start - length, end):
        begins = _aware(occurrence["DTSTART"].dt, zone)
        found.append((begins, begins + length))
    return found


def sessions(events: Iterable[Event], now: datetime, horizon: timedelta) -> list[Session]:
    """Sessions that end after `now` and start before `now + horizon`, in order.

    `events` are one instructor's office-hours events (already filtered by title,
    organizer and opt-out) plus the exceptions and cancellations of their series."""
    events = list(events)
    until = now + horizon
    replaced = {(e.series_id, _key(e.original_start, ZoneInfo("UTC")))
                for e in events if e.series_id and e.kind in (Kind.EXCEPTION, Kind.CANCELLED)}
    found: list[Session] = []
    for event in events:
        if event.start is None:
            continue
        if event.kind is Kind.SERIES:
            try:
                spans = _expand(event, now, until)
            except Exception as err:  # a broken rule must not stop the others
                log.warning("event=%s action=skip-recurrence problem=%r", event.id, str(err))
                continue
            spans = [s for s in spans if (event.id, s[0].timestamp()) not in replaced]
        elif event.kind in (Kind.EXCEPTION, Kind.SINGLE):
            zone = _zone(event.timezone)
            begins = _aware(event.start, zone)
            ends = _aware(event.end, zone) if event.end is not None else begins + DEFAULT_LENGTH
            spans = [(begins, ends)]
        else:
            continue
        found += [Session(b.astimezone(UTC), e.astimezone(UTC), event.id)
                  for b, e in spans if e > now and b < until]
    return sorted(found)
