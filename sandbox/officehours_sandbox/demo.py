"""`officehours demo`: a seeded sandbox domain, two real passes, and a before/after report."""

from __future__ import annotations

import difflib
import functools
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon.model import mask_url
from daemon.store.sqlite import State

from .domain import Sandbox

ZONE = ZoneInfo("America/New_York")
PACIFIC = ZoneInfo("America/Los_Angeles")


def _at(when: datetime) -> dict[str, str]:
    return {"dateTime": when.astimezone(ZONE).isoformat(), "timeZone": ZONE.key}


def seed(sandbox: Sandbox, now: datetime) -> None:
    """Three instructors whose calendars show every case the program must handle."""
    google = sandbox.google
    sandbox.add_instructor("Ada Lovelace", "ada@example.edu", 8123456789)
    sandbox.add_instructor("Grace Hopper", "grace@example.edu", 8234567890)
    # Alan's defaults are secure, but someone switched his Personal Room's own waiting
    # room off (Personal Room > Edit): students would walk straight in
    sandbox.add_instructor("Alan Turing", "alan@example.edu", 8345678901,
                           require_password_for_pmi_meetings="all", pmi_password="428571",
                           waiting_room=True, pmi_waiting_room=False)
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

    _seed_outlook(sandbox, local - timedelta(days=6))
    _seed_roster(sandbox, local)

    google.add_event("alan@example.edu", summary="Office Hours",
                     description=f"My Zoom room, as always: {alan_url}",
                     start=_at(review - hour * 24), end=_at(review - hour * 23),
                     recurrence=["RRULE:FREQ=WEEKLY;COUNT=10"])


View = dict[str, dict[str, dict[str, str]]]  # calendar -> event id -> what a person sees


ROSTER_GROUP = "physics-faculty"
JOINS, LEAVES = "hedy@example.edu", "emmy@example.edu"


def _seed_roster(sandbox: Sandbox, local: datetime) -> None:
    """An Entra group as the roster: Katherine and Emmy in it, Hedy not yet."""
    graph, people = sandbox.graph, (("Katherine Johnson", "katherine@example.edu"),
                                    ("Emmy Noether", LEAVES), ("Hedy Lamarr", JOINS))
    members = []
    for n, (name, email) in enumerate(people):
        graph.add_mailbox(email)
        sandbox.zoom.add_user(email, 8567890120 + n)
        start = local + timedelta(days=2, hours=n)
        graph.add_event(email, start, start + timedelta(hours=1), subject="Office Hours")
        user = graph.add_user(email, name)
        if email != JOINS:
            members.append(user)
    graph.add_group(ROSTER_GROUP, *members)


def _roster_change(sandbox: Sandbox) -> None:
    """Hedy joins the group, Emmy leaves it."""
    users = {u["mail"]: uid for uid, u in sandbox.graph.users.items()}
    sandbox.graph.add_group(ROSTER_GROUP, users["katherine@example.edu"], users[JOINS])


def _seed_outlook(sandbox: Sandbox, first: datetime) -> None:
    """Mary's Outlook calendar: a weekly series in Pacific time with one moved and one
    cancelled occurrence, an HTML body as Outlook stores it, and a lecture."""
    mary = "mary@example.edu"
    sandbox.add_microsoft_instructor("Mary Somerville", mary, 8456789012)
    graph = sandbox.graph
    first = first.astimezone(PACIFIC).replace(hour=11)
    hour = timedelta(hours=1)
    times = [(first + timedelta(weeks=i), first + timedelta(weeks=i) + hour) for i in range(12)]
    series = graph.add_event(
        mary, *times[0], occurrences=times, subject="Office Hours",
        body={"contentType": "html", "content": '<html><head><meta http-equiv="Content-Type" '
              'content="text/html; charset=utf-8"></head><body><div>Stop by with anything '
              "about the problem sets.</div></body></html>"},
        originalStartTimeZone="Pacific Standard Time",
        recurrence={"pattern": {"type": "weekly", "interval": 1, "firstDayOfWeek": "sunday",
                                "daysOfWeek": [first.strftime("%A").lower()]},
                    "range": {"type": "noEnd", "startDate": first.date().isoformat(),
                              "recurrenceTimeZone": "Pacific Standard Time"}})
    graph.add_exception(mary, series, times[2][0], times[2][0] + 3 * hour,
                        times[2][1] + 3 * hour,
                        body={"contentType": "text", "content": "Later this week only."})
    graph.cancel_occurrence(mary, series, times[3][0])
    graph.add_event(mary, *times[1], subject="Lecture: Celestial Mechanics")


def _snapshot(sandbox: Sandbox) -> View:
    """Every event of every calendar, Google's and Outlook's, in one readable shape."""
    view: View = {}
    for owner, events in sandbox.google.events.items():
        view[f"{owner} (Google)"] = {}
        for eid in events:
            e = sandbox.google.event(owner, eid)
            kind = ("cancelled occurrence" if e.get("status") == "cancelled" else "series"
                    if e.get("recurrence") else "modified occurrence"
                    if e.get("recurringEventId") else "single event")
            if not e.get("organizer", {}).get("self", True):
                kind += ", organized by someone else"
            view[f"{owner} (Google)"][eid] = {
                "title": e.get("summary") or "(cancelled occurrence)", "kind": kind,
                "description": e.get("description", ""), "location": e.get("location", ""),
                "etag": e["etag"]}
    kinds = {"seriesMaster": "series", "exception": "modified occurrence",
             "singleInstance": "single event"}
    for owner, events in sandbox.graph.events.items():
        view[f"{owner} (Outlook)"] = {}
        for eid in events:
            e = sandbox.graph.event(owner, eid)
            kind = kinds[e["type"]] + ("" if e["isOrganizer"] else ", organized by someone else")
            if e.get("cancelledOccurrences"):
                kind += f", {len(e['cancelledOccurrences'])} occurrence(s) cancelled"
            view[f"{owner} (Outlook)"][eid] = {
                "title": e["subject"], "kind": kind, "description": e["body"]["content"],
                "location": e["location"].get("displayName", ""), "etag": e["@odata.etag"]}
    return view


def _zoom_state(sandbox: Sandbox) -> dict[str, str]:
    out = {}
    for email, user in sandbox.zoom.users.items():
        lacking = [name for name, ok in (
            ("passcode required", user.require_password_for_pmi_meetings == "all"),
            ("passcode set", bool(user.pmi_password)),
            ("waiting room", user.room_waiting_room))
            if not ok]
        state = "secure" if not lacking else "INSECURE: no " + ", no ".join(lacking)
        out[email] = f"{state}; link {mask_url(user.join_url)}"
    return out


def _lines(text: str) -> list[str]:
    return text.replace("<br>", "\n").splitlines()


def _report(sandbox: Sandbox, before: View, zoom_before: dict[str, str]) -> None:
    print("\n=== Calendars: before -> after ===")
    for calendar, events in _snapshot(sandbox).items():
        print(f"\n{calendar}")
        for eid, event in events.items():
            old = before[calendar][eid]
            if old["etag"] == event["etag"]:
                print(f"  - {event['title']!r} ({event['kind']}): untouched")
                continue
            print(f"  * {event['title']!r} ({event['kind']}): WRITTEN")
            for line in difflib.ndiff(_lines(old["description"]), _lines(event["description"])):
                if line.startswith(("+ ", "  ")):
                    print(f"      {mask_url(line)}")
            if old["location"] != event["location"]:
                print(f"      location: {old['location']!r} -> {mask_url(event['location'])!r}")
    print("\n=== Zoom PMIs: before -> after ===")
    for email, state in _zoom_state(sandbox).items():
        print(f"  {email}\n      before: {zoom_before[email]}\n      after:  {state}")


def _same(moment: datetime) -> datetime:
    return moment


def _lead_window_pass(config: Path) -> tuple[int, int]:
    """A dry run per instructor with the clock at their next session's start minus 5
    minutes, as the pre-session check runs: (events it would write, Zoom repairs)."""
    from daemon.app import open_engine
    from daemon.config import load

    loaded = load(config)
    state = State(loaded.service.state_dir / "state.sqlite3", read_only=True)
    try:
        upcoming = {key: s.next_session for key, s in state.statuses().items()}
    finally:
        state.close()
    written = changed = 0
    for instructor in loaded.instructors:
        start = upcoming.get(instructor.key)
        if start is None:
            continue
        moment = datetime.fromisoformat(start) - timedelta(minutes=5)
        engine = open_engine(loaded, dry_run=True, clock=functools.partial(_same, moment))
        try:
            result = engine.sync(instructor)
        finally:
            engine.close()
        written += len(result.changes)
        changed += result.zoom != "secure"
    return written, changed


def _intro(sandbox: Sandbox) -> None:
    print("officehours demo: local emulators on 127.0.0.1 "
          f"(Google Calendar {sandbox.google_server.url}, Microsoft Graph "
          f"{sandbox.graph_server.url}, Zoom {sandbox.zoom_server.url})")
    print("Every instructor with office hours ahead has their PMI secured before their "
          "link is written,\nso the link students receive is final. Alan's user "
          "default has the waiting room on,\nbut his Personal Room's own is off: "
          "that is the one students meet.\nTwo more Outlook instructors come from "
          f"an Entra group, {ROSTER_GROUP} (the roster); {JOINS} has office hours "
          "too, but joins the group only in pass 4.\n")


def _first_two_passes(main: Callable[[list[str]], int], sandbox: Sandbox, config: Path) -> int:
    """Pass 1 links and secures everyone; pass 2, with nothing changed, writes nothing."""
    before, zoom_before = _snapshot(sandbox), _zoom_state(sandbox)
    print("=== Pass 1: officehours sync ===")
    code = main(["--config", str(config), "sync"])
    emulators = (sandbox.google, sandbox.graph, sandbox.zoom)
    first = [len(e.log) for e in emulators]
    first_writes = sum(len(e.writes()) for e in emulators)
    _report(sandbox, before, zoom_before)
    print("\n=== Pass 2: officehours sync (nothing changed since) ===")
    code = main(["--config", str(config), "sync"]) or code
    total = [len(e.log) for e in emulators]
    second_writes = sum(len(e.writes()) for e in emulators) - first_writes
    names = ("Google", "Graph", "Zoom")
    print("\nRequests, first pass: " + ", ".join(
        f"{n} {c}" for n, c in zip(names, first, strict=True)) + f" ({first_writes} "
        "writes); second pass: " + ", ".join(
        f"{n} {t - c}" for n, c, t in zip(names, first, total, strict=True))
        + f" ({second_writes} writes).")
    return code


def _push(sandbox: Sandbox, config: Path) -> int:
    """`officehours run` with [push], passes an hour apart: a new event linked in seconds
    by the vendors' notifications (through the campus's HTTPS proxy, Front)."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    from .waiting import wait_for

    print("\n=== Pass 5: `officehours run` with [push]: Google and Graph call back ===")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        listen = f"127.0.0.1:{probe.getsockname()[1]}"
    public = sandbox.push(listen)
    text = config.read_text().replace("sync_interval_seconds = 300",
                                      "sync_interval_seconds = 3600")
    config.write_text(text + f'\n[push]\npublic_url = "{public}"\nlisten = "{listen}"\n')
    service = subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config),
                                "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        served = len(sandbox.google.events) + len(sandbox.graph.events) - 1  # not Emmy
        wait_for(lambda: len(sandbox.google.live_channels()) + len(sandbox.graph.subscriptions)
                 >= served, timeout=60, what="a subscription per calendar served")
        print(f"  subscribed: {len(sandbox.google.live_channels())} Google channels, "
              f"{len(sandbox.graph.subscriptions)} Graph subscriptions")
        start = datetime.now(UTC) + timedelta(days=2)
        added = sandbox.google.add_event("ada@example.edu", summary="Office Hours (extra)",
                                         start=_at(start), end=_at(start + timedelta(hours=1)))
        began = time.monotonic()
        wait_for(lambda: "Zoom (added by officehours)" in (sandbox.google.event(
            "ada@example.edu", added).get("description") or ""), timeout=30,
            what="the new event linked by push")
        print(f"  ada@example.edu added 'Office Hours (extra)': linked "
              f"{time.monotonic() - began:.1f} s later, no pass in between (next in an hour)")
    except AssertionError as err:
        print(f"  PUSH FAILED: {err}")
        return 1
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
    return 0


def run_demo(main: Callable[[list[str]], int]) -> int:
    """`main` is the CLI's entry point, which runs each pass as an admin would."""
    with tempfile.TemporaryDirectory(prefix="officehours-demo-") as directory:
        sandbox = Sandbox(Path(directory))
        try:
            seed(sandbox, datetime.now(UTC))
            config = sandbox.write_config(log_level="warning")
            config.write_text(config.read_text() + f'\n[roster]\nentra_group_id = '
                              f'"{ROSTER_GROUP}"\nleave_grace_hours = 0\n'
                              "max_drop_percent = 50\n")
            _intro(sandbox)
            code = _first_two_passes(main, sandbox, config)
            print("\n=== Pass 3 (dry run): each instructor inside their next session's lead "
                  "window ===")
            third = _lead_window_pass(config)
            print(f"{third[0]} event(s) would be written, {third[1]} PMI(s) would be repaired: "
                  "every link written in pass 1 was already final.")
            print(f"\n=== Pass 4: the roster group changed: {JOINS} joined, {LEAVES} left ===")
            _roster_change(sandbox)
            code = main(["--config", str(config), "sync"]) or code
            for email in (JOINS, LEAVES):
                (event_id,) = sandbox.graph.events[email]
                body = sandbox.graph.event(email, event_id)["body"]["content"]
                shown = "carries the link" if "Zoom (added by officehours)" in body else \
                    "has no link of ours (offboarded as remove-links does)"
                print(f"  {email}: 'Office Hours' {shown}")
            code = _push(sandbox, config) or code
            print("\n=== officehours status ===")
            main(["--config", str(config), "status"])
            problems = [p for e in (sandbox.google, sandbox.graph, sandbox.zoom)
                        for p in e.schema_errors]
            for problem in problems:
                print(f"SCHEMA: {problem}")
            return code or (1 if problems else 0)
        finally:
            sandbox.stop()


if __name__ == "__main__":  # `officehours demo` runs this
    import sys

    from daemon.cli import main

    sys.exit(run_demo(main))
