"""Pure mapping of Graph's patternedRecurrence and Windows time-zone names to RFC 5545.

Graph describes a series as pattern + range; the shared model holds RRULE/EXDATE lines
in an IANA zone, so Outlook series expand exactly like Google ones.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

DAYS = {"sunday": "SU", "monday": "MO", "tuesday": "TU", "wednesday": "WE",
        "thursday": "TH", "friday": "FR", "saturday": "SA"}
INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
FREQ = {"daily": "DAILY", "weekly": "WEEKLY", "absoluteMonthly": "MONTHLY",
        "relativeMonthly": "MONTHLY", "absoluteYearly": "YEARLY", "relativeYearly": "YEARLY"}


def iana_zone(name: str | None) -> str:
    """An IANA zone for a Windows name ("Pacific Standard Time"), an IANA name, or UTC."""
    if not name:
        return "UTC"
    candidate = win_tz.get(name, name)
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return candidate


def _days(pattern: dict[str, Any]) -> str:
    return ",".join(DAYS[d.lower()] for d in pattern.get("daysOfWeek") or [])


def rrule(recurrence: dict[str, Any], zone: str) -> str:
    """The RRULE line for a patternedRecurrence whose DTSTART is in `zone`."""
    pattern, span = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    kind = pattern.get("type", "")
    if kind not in FREQ:
        raise ValueError(f"unknown recurrence pattern type {kind!r}")
    parts = [f"FREQ={FREQ[kind]}"]
    if int(pattern.get("interval") or 1) > 1:
        parts.append(f"INTERVAL={int(pattern['interval'])}")
    if kind == "weekly":
        parts.append(f"BYDAY={_days(pattern)}")
        first = (pattern.get("firstDayOfWeek") or "sunday").lower()
        parts.append(f"WKST={DAYS[first]}")
    elif kind in ("absoluteMonthly", "absoluteYearly"):
        if kind == "absoluteYearly":
            parts.append(f"BYMONTH={int(pattern['month'])}")
        parts.append(f"BYMONTHDAY={int(pattern['dayOfMonth'])}")
    elif kind in ("relativeMonthly", "relativeYearly"):
        if kind == "relativeYearly":
            parts.append(f"BYMONTH={int(pattern['month'])}")
        parts.append(f"BYDAY={_days(pattern)}")
        parts.append(f"BYSETPOS={INDEX[(pattern.get('index') or 'first').lower()]}")
    if span.get("type") == "endDate" and span.get("endDate"):
        last = datetime.combine(date.fromisoformat(span["endDate"]), time(23, 59, 59),
                                tzinfo=ZoneInfo(zone))
        parts.append(f"UNTIL={last.astimezone(UTC):%Y%m%dT%H%M%SZ}")
    elif span.get("type") == "numbered" and span.get("numberOfOccurrences"):
        parts.append(f"COUNT={int(span['numberOfOccurrences'])}")
    return "RRULE:" + ";".join(parts)


def exdates(cancelled: list[str], first: datetime, zone: str) -> list[str]:
    """EXDATE lines from cancelledOccurrences ("OID.<master id>.<yyyy-mm-dd>")."""
    local = first.astimezone(ZoneInfo(zone))
    lines = []
    for entry in cancelled:
        try:
            day = date.fromisoformat(entry.rsplit(".", 1)[1])
        except (IndexError, ValueError):
            continue
        when = datetime.combine(day, local.time())
        lines.append(f"EXDATE;TZID={zone}:{when:%Y%m%dT%H%M%S}")
    return lines
