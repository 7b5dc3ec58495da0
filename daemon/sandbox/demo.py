"""`officehours demo`: a seeded sandbox domain, two real passes, and a before/after report."""

from __future__ import annotations

import difflib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..http import mask_url
from .domain import Sandbox

ZONE = ZoneInfo("America/New_York")


def _at(when: datetime) -> dict[str, str]:
    return {"dateTime": when.astimezone(ZONE).isoformat(), "timeZone": ZONE.key}


def seed(sandbox: Sandbox, now: datetime) -> None:
    """Three instructors whose calendars show every case the program must handle."""
    google = sandbox.google
    sandbox.add_instructor("Ada Lovelace", "ada@example.edu", 8123456789)
    sandbox.add_instructor("Grace Hopper", "grace@example.edu", 8234567890)
    sandbox.add_instructor("Alan Turing", "alan@example.edu", 8345678901,
                           require_password_for_pmi_meetings="all", pmi_password="428571",
                           waiting_room=True)
    alan_url = sandbox.zoom.user("alan@example.edu").join_url

    local = now.astimezone(ZONE).replace(hour=14, minute=0, second=0, microsecond=0)
    first = local - timedelta(days=7)
    hour = timedelta(hours=1)
    ada = "ada@example.edu"
    series = google.add_event(
        ada, summary="Office Hours", description="Drop by with questions about the homework.",
        start=_at(first), end=_at(first + hour), recurrence=["RRULE:FREQ=WEEKLY;BYDAY=MO,WE"])
    moved_from = first + timedelta(days=14)
    google.add_event(ada, summary="Office Hours", recurringEventId=series,
                     description="Moved to the afternoon this week.",
                     originalStartTime=_at(moved_from),
                     start=_at(moved_from + 2 * hour), end=_at(moved_from + 3 * hour))
    google.add_event(ada, status="cancelled", recurringEventId=series,
                     originalStartTime=_at(first + timedelta(days=21)))
    review = local + timedelta(days=3)
    google.add_event(ada, summary="Office Hours - Exam review", description="",
                     start=_at(review), end=_at(review + hour))
    google.add_event(ada, summary="Lecture: Analytical Engines", description="Room 101",
                     start=_at(first), end=_at(first + hour), recurrence=["RRULE:FREQ=WEEKLY"])
    google.add_event(ada, summary="Office Hours", organizer={"email": "babbage@example.edu"},
                     description="Charles's office hours (Ada is only invited)",
                     start=_at(review), end=_at(review + hour))

    google.add_event("grace@example.edu", summary="office hours (room 4)", location="Room 4",
                     description="<b>Compilers</b> questions welcome<br>Bring your code",
                     start=_at(now - timedelta(minutes=10)), end=_at(now + timedelta(minutes=50)))

    google.add_event("alan@example.edu", summary="Office Hours",
                     description=f"My Zoom room, as always: {alan_url}",
                     start=_at(review - hour * 24), end=_at(review - hour * 23),
                     recurrence=["RRULE:FREQ=WEEKLY;COUNT=10"])


def _snapshot(sandbox: Sandbox) -> dict[str, dict[str, dict[str, Any]]]:
    return {owner: {eid: sandbox.google.event(owner, eid) for eid in events}
            for owner, events in sandbox.google.events.items()}


def _zoom_state(sandbox: Sandbox) -> dict[str, str]:
    out = {}
    for email, user in sandbox.zoom.users.items():
        lacking = [name for name, ok in (
            ("passcode required", user.require_password_for_pmi_meetings == "all"),
            ("passcode set", bool(user.pmi_password)), ("waiting room", user.waiting_room))
            if not ok]
        state = "secure" if not lacking else "INSECURE: no " + ", no ".join(lacking)
        out[email] = f"{state}; link {mask_url(user.join_url)}"
    return out


def _report(sandbox: Sandbox, before: dict[str, dict[str, dict[str, Any]]],
            zoom_before: dict[str, str]) -> None:
    after = _snapshot(sandbox)
    print("\n=== Calendars: before -> after ===")
    for owner, events in after.items():
        print(f"\n{owner}")
        for eid, event in events.items():
            old = before[owner][eid]
            title = event.get("summary") or "(cancelled occurrence)"
            kind = ("cancelled occurrence" if event.get("status") == "cancelled" else
                    "series" if event.get("recurrence") else
                    "modified occurrence" if event.get("recurringEventId") else "single event")
            if not event.get("organizer", {}).get("self", True):
                kind += ", organized by someone else"
            if old.get("etag") == event.get("etag"):
                print(f"  - {title!r} ({kind}): untouched")
                continue
            print(f"  * {title!r} ({kind}): WRITTEN")
            diff = difflib.ndiff(old.get("description", "").splitlines(),
                                 event.get("description", "").splitlines())
            for line in diff:
                if line.startswith(("+ ", "  ")):
                    print(f"      {mask_url(line)}")
            if old.get("location", "") != event.get("location", ""):
                print(f"      location: {old.get('location', '')!r} -> "
                      f"{mask_url(event.get('location', ''))!r}")
    print("\n=== Zoom PMIs: before -> after ===")
    for email, state in _zoom_state(sandbox).items():
        print(f"  {email}\n      before: {zoom_before[email]}\n      after:  {state}")


def run_demo() -> int:
    from ..cli import main

    with tempfile.TemporaryDirectory(prefix="officehours-demo-") as directory:
        sandbox = Sandbox(Path(directory))
        try:
            seed(sandbox, datetime.now(UTC))
            config = sandbox.write_config(log_level="warning")
            print("officehours demo: local emulators on 127.0.0.1 "
                  f"(Google Calendar {sandbox.google_server.url}, Zoom {sandbox.zoom_server.url})")
            print("Grace's session is under way, so her PMI is secured now; Ada's next session "
                  "is hours away, so hers waits for its lead window.\n")
            before, zoom_before = _snapshot(sandbox), _zoom_state(sandbox)
            print("=== Pass 1: officehours sync ===")
            code = main(["--config", str(config), "sync"])
            first = len(sandbox.google.log) + len(sandbox.zoom.log)
            first_writes = len(sandbox.google.writes()) + len(sandbox.zoom.writes())
            _report(sandbox, before, zoom_before)
            print("\n=== Pass 2: officehours sync (nothing changed since) ===")
            code = main(["--config", str(config), "sync"]) or code
            total = len(sandbox.google.log) + len(sandbox.zoom.log)
            second_writes = len(sandbox.google.writes()) + len(sandbox.zoom.writes()) - first_writes
            print(f"\nRequests: first pass {first} ({first_writes} writes), second pass "
                  f"{total - first} ({second_writes} writes).")
            print("\n=== officehours status ===")
            main(["--config", str(config), "status"])
            problems = sandbox.google.schema_errors + sandbox.zoom.schema_errors
            for problem in problems:
                print(f"SCHEMA: {problem}")
            return code or (1 if problems else 0)
        finally:
            sandbox.stop()
