"""Calendars for the tests and the benchmark: a whole campus (many instructors, half on
Google and half on Outlook, each with office-hours series (one with a moved occurrence), a
single office-hours event and about twenty other events), the vendors' published limits,
and the few calendars the tests share."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .domain import Sandbox
from .server import RateLimit, Request

ZONE = ZoneInfo("America/Chicago")
PACIFIC = ZoneInfo("America/Los_Angeles")
WEEK = timedelta(days=7)
HOUR = timedelta(hours=1)
WEEKS = 9  # occurrences the Graph emulator materializes per series


def _at(when: datetime) -> dict[str, str]:
    return {"dateTime": when.astimezone(ZONE).isoformat(), "timeZone": ZONE.key}


def email_of(index: int) -> str:
    return f"instructor{index:05d}@example.edu"


def seed_campus(box: Sandbox, count: int, now: datetime, rng: random.Random,
                other_events: int = 20) -> list[str]:
    """`count` instructors; returns their addresses (even: Google, odd: Outlook)."""
    for index in range(count):
        email = email_of(index)
        if index % 2 == 0:
            box.add_instructor(f"Instructor {index}", email, 8000000000 + index)
            _google_calendar(box, email, now, rng, other_events)
        else:
            box.add_microsoft_instructor(f"Instructor {index}", email, 8000000000 + index)
            _outlook_calendar(box, email, now, rng, other_events)
    return [email_of(i) for i in range(count)]


def _first_start(now: datetime, rng: random.Random) -> datetime:
    """A weekly slot that began some weeks ago, at a whole hour of a working day."""
    day = now.astimezone(ZONE).replace(hour=rng.randint(9, 16), minute=0, second=0,
                                       microsecond=0)
    return day - timedelta(days=rng.randint(7, 40))


def _google_calendar(box: Sandbox, email: str, now: datetime, rng: random.Random,
                     others: int) -> None:
    google = box.google
    for series_index in range(2):
        first = _first_start(now, rng)
        series = google.add_event(email, summary="Office Hours", description="Drop by!",
                                  start=_at(first), end=_at(first + HOUR),
                                  recurrence=["RRULE:FREQ=WEEKLY"])
        if series_index == 0:
            moved = first + timedelta(weeks=(now - first).days // 7 + 1)
            google.add_event(email, summary="Office Hours", recurringEventId=series,
                             description="Moved this week", originalStartTime=_at(moved),
                             start=_at(moved + 2 * HOUR), end=_at(moved + 3 * HOUR))
    single = now + timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 8))
    google.add_event(email, summary="Office Hours - exam review", description="",
                     start=_at(single), end=_at(single + HOUR))
    for _ in range(others):
        when = now + timedelta(hours=rng.randint(-200, 800))
        google.add_event(email, summary=rng.choice(["Lecture", "Lab", "Faculty meeting"]),
                         description="Room 101", start=_at(when), end=_at(when + HOUR))


def _outlook_calendar(box: Sandbox, email: str, now: datetime, rng: random.Random,
                      others: int) -> None:
    graph = box.graph
    for series_index in range(2):
        first = _first_start(now, rng)
        start = first + timedelta(weeks=(now - first).days // 7 - 1)
        times = [(start + timedelta(weeks=w), start + timedelta(weeks=w) + HOUR)
                 for w in range(WEEKS)]
        local = first.astimezone(ZONE)
        series = graph.add_event(
            email, *times[0], occurrences=times, subject="Office Hours",
            body={"contentType": "html", "content": "<html><body>Drop by!</body></html>"},
            originalStartTimeZone="Central Standard Time",
            recurrence={"pattern": {"type": "weekly", "interval": 1,
                                    "daysOfWeek": [local.strftime("%A").lower()]},
                        "range": {"type": "noEnd", "startDate": local.date().isoformat(),
                                  "recurrenceTimeZone": "Central Standard Time"}})
        if series_index == 0:
            graph.add_exception(email, series, times[2][0], times[2][0] + 2 * HOUR,
                                times[2][1] + 2 * HOUR)
    single = now + timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 8))
    graph.add_event(email, single, single + HOUR, subject="Office Hours - exam review")
    for _ in range(others):
        when = now + timedelta(hours=rng.randint(-20, 800))
        graph.add_event(email, when, when + HOUR,
                        subject=rng.choice(["Lecture", "Lab", "Faculty meeting"]))


def add_session(box: Sandbox, email: str, start: datetime, title: str = "Office Hours") -> str:
    """A new single office-hours event, as an instructor adds it."""
    if int(email[10:15]) % 2 == 0:
        return box.google.add_event(email, summary=title, start=_at(start),
                                    end=_at(start + HOUR))
    return box.graph.add_event(email, start, start + HOUR, subject=title)


def office_hours(box: Sandbox, email: str, now: datetime, pmi: int) -> list[str]:
    """A Google instructor with a daily office-hours series and a single session; their
    ids."""
    box.add_instructor(email.split("@")[0].title(), email, pmi)
    start = now + 3 * HOUR
    return [box.google.add_event(email, summary="Office Hours", description="Welcome.",
                                     start=_at(start), end=_at(start + HOUR),
                                     recurrence=["RRULE:FREQ=DAILY"]),
            box.google.add_event(email, summary="Office Hours - review", description="",
                                     start=_at(start + 26 * HOUR),
                                     end=_at(start + 27 * HOUR))]


def weekly_evening_series(box: Sandbox, email: str, now: datetime) -> tuple[str, list[datetime]]:
    """An Outlook instructor's office hours every week at 18:30 Pacific from tomorrow:
    01:30 or 02:30 UTC the next day, so a cancelled occurrence's date differs in UTC and
    where it recurs. The series' id and its starts (UTC)."""
    local = (now.astimezone(PACIFIC) + timedelta(days=1)).replace(hour=18, minute=30,
                                                                  second=0, microsecond=0)
    starts = [local + i * WEEK for i in range(6)]  # same wall time across a DST change
    master = box.graph.add_event(
        email, starts[0], starts[0] + HOUR, occurrences=[(s, s + HOUR) for s in starts],
        subject="Office Hours", body={"contentType": "text", "content": "Drop in."},
        originalStartTimeZone="Pacific Standard Time",
        recurrence={"pattern": {"type": "weekly", "interval": 1, "firstDayOfWeek": "sunday",
                                "daysOfWeek": [local.strftime("%A").lower()]},
                    "range": {"type": "noEnd", "startDate": local.date().isoformat(),
                              "recurrenceTimeZone": "Pacific Standard Time"}})
    return master, [s.astimezone(UTC) for s in starts]


def description(box: Sandbox, email: str, event_id: str) -> str:
    if int(email[10:15]) % 2 == 0:
        return str(box.google.event(email, event_id).get("description", ""))
    return str(box.graph.event(email, event_id)["body"]["content"])


# Zoom's per-second limits by plan and category (developers.zoom.us/docs/api/rest/rate-
# limits/: Pro light 30/s, medium 20/s; Business, Education, Enterprise light 80/s, medium 60/s)
ZOOM_LIMITS = {"pro": (30, 20), "business": (80, 60), "enterprise": (80, 60)}


def apply_vendor_limits(box: Sandbox, zoom_plan: str = "pro") -> None:
    """The published limits: Zoom by plan (above); Google Calendar (10,000 requests a minute
    per project, 600 per user); Graph (4 concurrent per mailbox, already on)."""
    def zoom_category(kind: str) -> Any:
        def key(request: Request) -> str | None:
            if "token" in request.path:
                return None
            medium = "settings" in request.path
            return kind if (kind == "medium") == medium else None
        return key

    light, medium = ZOOM_LIMITS[zoom_plan]
    box.zoom.rate_limits = [RateLimit("zoom-light", light, 1.0, zoom_category("light")),
                            RateLimit("zoom-medium", medium, 1.0, zoom_category("medium"))]

    def project(request: Request) -> str | None:
        return None if "token" in request.path else "project"

    box.google.rate_limits = [RateLimit("google-project", 10_000, 60.0, project),
                              RateLimit("google-user", 600, 60.0, box.google.caller_of)]


def now_utc() -> datetime:
    return datetime.now(UTC)
