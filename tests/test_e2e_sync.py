"""`officehours sync` in a subprocess against the Google and Zoom emulators."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import HOUR, at, officehours
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import Request, Response

from daemon.reconcile import START_MARK

ADA, BOB = "ada@example.edu", "bob@example.edu"
OFFICE = ("series", "exception", "single")
UNTOUCHED = ("cancelled", "lecture", "foreign")


def seed(sandbox: Sandbox, email: str, now: datetime, next_session: timedelta,
         pmi: int = 8123456789, **zoom: Any) -> dict[str, str]:
    """One instructor: a daily series (next occurrence after `next_session`), a moved and a
    cancelled occurrence, a single event, a lecture, and someone else's office hours."""
    sandbox.add_instructor(email.split("@")[0].title() + " Lovelace", email, pmi, **zoom)
    google = sandbox.google
    start = now + next_session
    day = timedelta(days=1)
    ids = {"series": google.add_event(
        email, summary="Office Hours", description="Questions welcome.",
        start=at(start - 7 * day), end=at(start - 7 * day + HOUR),
        recurrence=["RRULE:FREQ=DAILY"])}
    ids["exception"] = google.add_event(
        email, summary="Office Hours", recurringEventId=ids["series"],
        description="Moved this week.", originalStartTime=at(start + day),
        start=at(start + day + 2 * HOUR), end=at(start + day + 3 * HOUR))
    ids["cancelled"] = google.add_event(email, status="cancelled",
                                        recurringEventId=ids["series"],
                                        originalStartTime=at(start + 2 * day))
    ids["single"] = google.add_event(email, summary="Office Hours - review", description="",
                                     start=at(start + 3 * day), end=at(start + 3 * day + HOUR))
    ids["lecture"] = google.add_event(email, summary="Lecture", description="Room 1",
                                      start=at(start), end=at(start + HOUR))
    ids["foreign"] = google.add_event(email, summary="Office Hours",
                                      organizer={"email": "other@example.edu"},
                                      start=at(start), end=at(start + HOUR))
    return ids


def events(sandbox: Sandbox, email: str, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: sandbox.google.event(email, eid) for name, eid in ids.items()}


def assert_linked(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                  url: str) -> None:
    for name in OFFICE:
        description = after[name]["description"]
        assert description.startswith(before[name].get("description", "")), name
        assert description.count(url) == 1, (name, description)
        assert after[name]["location"] == url, name
    for name in UNTOUCHED:
        assert after[name] == before[name], name


def test_first_pass_links_office_hours_and_second_pass_writes_nothing(
        sandbox: Sandbox, now: datetime) -> None:
    ids = seed(sandbox, ADA, now, next_session=3 * HOUR)
    config = sandbox.write_config()
    before = events(sandbox, ADA, ids)

    first = officehours(config, "sync")
    assert first.returncode == 0, first.stderr
    assert_linked(before, events(sandbox, ADA, ids), sandbox.zoom.user(ADA).join_url)
    assert len(sandbox.google.requests("GET", "/events")) == 2  # 6 events, 3 per page
    assert sandbox.google.send_updates == ["none"] * 3
    # secured at first sight, hours ahead of the session, before the link was written
    assert [r.path for r in sandbox.zoom.writes()] == [f"/v2/users/{ADA}/settings",
                                                       "/v2/meetings/8123456789"]
    assert "3 event(s) changed" in first.stdout

    writes = len(sandbox.google.writes()) + len(sandbox.zoom.writes())
    second = officehours(config, "sync")
    assert second.returncode == 0, second.stderr
    assert len(sandbox.google.writes()) + len(sandbox.zoom.writes()) == writes


def test_zoom_secured_at_first_sight_so_the_first_link_written_is_final(
        sandbox: Sandbox, now: datetime) -> None:
    ada = seed(sandbox, ADA, now, next_session=timedelta(minutes=5))
    bob = seed(sandbox, BOB, now, next_session=3 * HOUR, pmi=8999999999)
    old_url = sandbox.zoom.user(ADA).join_url
    config = sandbox.write_config(enforce_lead_minutes=15)

    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert sandbox.zoom.user(ADA).secure and sandbox.zoom.user(BOB).secure
    ada_zoom = [(r.method, r.path) for r in sandbox.zoom.requests()
                if ADA in r.path or "8123456789" in r.path]
    patch = ada_zoom.index(("PATCH", "/v2/meetings/8123456789"))
    assert ("GET", "/v2/meetings/8123456789") in ada_zoom[patch + 1:]  # read back
    assert ("GET", f"/v2/users/{ADA}/settings") in ada_zoom[patch + 1:]

    new_url = sandbox.zoom.user(ADA).join_url
    assert new_url != old_url and "pwd=" in new_url  # the passcode we set changed the link
    after = events(sandbox, ADA, ada)
    for name in OFFICE:
        assert after[name]["description"].count(new_url) == 1
        assert not re.search(re.escape(old_url) + r"(?!\?pwd)", after[name]["description"])
    assert events(sandbox, BOB, bob)["series"]["location"] == sandbox.zoom.user(BOB).join_url
    google_writes = len(sandbox.google.writes())
    assert officehours(config, "sync").returncode == 0
    assert len(sandbox.google.writes()) == google_writes  # no link ever rewritten after


@pytest.mark.parametrize("refuse", [False, True], ids=["silently-kept", "400-code-300"])
def test_zoom_refusal_is_loud_and_others_still_processed(
        sandbox: Sandbox, now: datetime, refuse: bool) -> None:
    seed(sandbox, ADA, now, next_session=timedelta(minutes=5), locked={"waiting_room"},
         refuse_locked=refuse)
    bob = seed(sandbox, BOB, now, next_session=3 * HOUR, pmi=8999999999)
    config = sandbox.write_config()

    result = officehours(config, "sync")
    assert result.returncode == 1
    assert "Ada" in result.stderr and ("waiting_room" in result.stderr
                                       or "locked" in result.stderr)
    assert not sandbox.zoom.user(ADA).room_waiting_room
    assert START_MARK in events(sandbox, BOB, bob)["series"]["description"]
    status = json.loads(officehours(config, "status", "--json").stdout)["instructors"]
    ada_row = next(row for row in status if row["email"] == ADA)
    assert ada_row["zoom_state"].startswith("refused") and ada_row["last_error"]


def test_412_conflict_rereads_and_keeps_the_concurrent_edit(
        sandbox: Sandbox, now: datetime) -> None:
    ids = seed(sandbox, ADA, now, next_session=3 * HOUR)
    config = sandbox.write_config()
    edited = threading.Event()

    def instructor_edits_first(request: Request) -> Response | None:
        if request.method == "PATCH" and request.path.endswith(ids["series"]) \
                and not edited.is_set():
            edited.set()
            sandbox.google.edit_event(ADA, ids["series"],
                                      description="Questions welcome. Bring snacks!")
        return None

    sandbox.google.hooks.append(instructor_edits_first)
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert [r.status for r in sandbox.google.requests("PATCH", ids["series"])] == [412, 200]
    description = sandbox.google.event(ADA, ids["series"])["description"]
    assert description.startswith("Questions welcome. Bring snacks!\n\n" + START_MARK)
    assert description.count(sandbox.zoom.user(ADA).join_url) == 1


def test_410_on_sync_token_triggers_a_full_resync(sandbox: Sandbox, now: datetime) -> None:
    seed(sandbox, ADA, now, next_session=3 * HOUR)
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    sandbox.google.expire_sync_tokens()
    new = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 5 * HOUR),
                                   end=at(now + 6 * HOUR))
    writes = len(sandbox.google.writes())

    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert 410 in [r.status for r in sandbox.google.requests("GET", "/events")]
    assert sandbox.zoom.user(ADA).join_url in sandbox.google.event(ADA, new)["description"]
    assert len(sandbox.google.writes()) == writes + 1  # only the new event


def test_expired_zoom_token_is_refreshed(sandbox: Sandbox, now: datetime) -> None:
    seed(sandbox, ADA, now, next_session=timedelta(minutes=5))
    config = sandbox.write_config()
    expired = threading.Event()

    def expire_once(request: Request) -> Response | None:
        if request.path.endswith("/settings") and not expired.is_set():
            expired.set()
            sandbox.zoom.expire_access_tokens()  # this very request now carries a dead token
        return None

    sandbox.zoom.hooks.append(expire_once)
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert 401 in [r.status for r in sandbox.zoom.requests("GET", "/settings")]
    assert len(sandbox.zoom.requests("POST", "/oauth/token")) == 2
    assert sandbox.zoom.user(ADA).secure


def test_dry_run_writes_nothing_anywhere(sandbox: Sandbox, now: datetime) -> None:
    seed(sandbox, ADA, now, next_session=timedelta(minutes=5))
    config = sandbox.write_config()
    result = officehours(config, "sync", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "3 event(s) would change" in result.stdout
    assert "would repair" in result.stdout
    assert sandbox.google.writes() == [] and sandbox.zoom.writes() == []
    assert not (sandbox.dir / "state" / "state.sqlite3").exists()


def test_pmi_link_change_reaches_every_event(sandbox: Sandbox, now: datetime) -> None:
    ids = seed(sandbox, ADA, now, next_session=3 * HOUR)
    sandbox.zoom.user(ADA).pmi_password = "111111"
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    old_url = sandbox.zoom.user(ADA).join_url
    sandbox.zoom.user(ADA).pmi_password = "222222"  # the instructor changes it in Zoom
    new_url = sandbox.zoom.user(ADA).join_url

    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    for name, event in events(sandbox, ADA, ids).items():
        assert old_url not in json.dumps(event), name
        if name in OFFICE:
            assert event["description"].count(new_url) == 1 and event["location"] == new_url


def test_remove_links_leaves_events_as_before_plus_instructor_additions(
        sandbox: Sandbox, now: datetime) -> None:
    ids = seed(sandbox, ADA, now, next_session=3 * HOUR)
    sandbox.google.edit_event(ADA, ids["single"], location="Room 4")
    config = sandbox.write_config()
    before = events(sandbox, ADA, ids)
    assert officehours(config, "sync").returncode == 0
    series = sandbox.google.event(ADA, ids["series"])
    sandbox.google.edit_event(ADA, ids["series"], description=series["description"] + "\nPS")

    dry = officehours(config, "remove-links", "--dry-run", "--instructor", ADA)
    assert dry.returncode == 0 and "would change" in dry.stdout
    writes = len(sandbox.google.writes())
    assert officehours(config, "remove-links").returncode == 0
    assert len(sandbox.google.writes()) == writes + 3
    after = events(sandbox, ADA, ids)
    assert after["series"]["description"] == "Questions welcome.\nPS"
    assert after["series"]["location"] == ""
    assert after["exception"]["description"] == before["exception"]["description"]
    assert after["single"]["location"] == "Room 4"
    assert after["single"]["description"] == ""


def test_authorized_user_credentials_use_the_files_token_uri(
        sandbox: Sandbox, now: datetime) -> None:
    ids = seed(sandbox, ADA, now, next_session=3 * HOUR)
    info = sandbox.google.add_authorized_user(ADA)
    info["token_uri"] = info["token_uri"].format(url=sandbox.google_server.url)
    (sandbox.credentials / "google.json").write_text(json.dumps(info))
    config = sandbox.write_config()
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert sandbox.google.requests("POST", "/token")
    assert START_MARK in sandbox.google.event(ADA, ids["series"])["description"]


def test_status_shows_each_instructor(sandbox: Sandbox, now: datetime) -> None:
    seed(sandbox, ADA, now, next_session=timedelta(minutes=-5))  # a session under way
    seed(sandbox, BOB, now, next_session=3 * HOUR, pmi=8999999999,
         locked={"waiting_room"})
    config = sandbox.write_config()
    never = officehours(config, "status")
    assert never.returncode == 0 and "never" in never.stdout
    assert officehours(config, "sync").returncode == 1  # Bob's waiting room is locked
    for secret in sandbox.credentials.iterdir():  # status needs none of them
        secret.unlink()
    table = officehours(config, "status")
    assert table.returncode == 1, table.stderr  # for monitoring: Bob's PMI is refused
    ada_line = next(line for line in table.stdout.splitlines() if "Ada Lovelace" in line)
    assert "under way" in ada_line and "repaired" in ada_line
    assert "passcode (in link), waiting room" in ada_line
    assert "REFUSED" in table.stdout and "NO WAITING ROOM" in table.stdout
    assert "    last error: Zoom kept the PMI of bob@example.edu insecure" in table.stdout
    # times as CONTRACT.md shows them (date with the year, time, zone); names never cut in
    # a pipe; a summary line first
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d [A-Z]+", ada_line), ada_line
    assert "Ada Lovelace <ada@example.edu>" in ada_line and "…" not in table.stdout
    assert table.stdout.splitlines()[0].startswith("2 served, 1 failing, 1 refused")
    ada, bob = json.loads(officehours(config, "status", "--json").stdout)["instructors"]
    assert ada["last_pass"] and ada["session_under_way"] and ada["last_error"] is None
    assert ada["zoom_state"].startswith("repaired") and not ada["failing"]
    assert bob["failing"] and not bob["session_under_way"]
    # for scripts: the summary and the rooms, and filters that keep the campus's exit code
    shown = json.loads(officehours(config, "status", "--json").stdout)
    assert shown["summary"] == {"served": 2, "failing": 1, "refused": 1, "leaving": 0,
                                "offboarded": 0}
    assert shown["rooms"] == {"secure": 1, "insecure": 0, "refused": 1, "unchecked": 0}
    assert shown["leader"] is None and shown["nodes"] == []  # one node on SQLite
    failing = officehours(config, "status", "--failing")
    assert failing.returncode == 1 and "Bob" in failing.stdout
    assert "Ada Lovelace" not in failing.stdout
    one = officehours(config, "status", "--instructor", "ADA@example.edu", "--json")
    assert one.returncode == 1  # Bob still fails: the exit code is the campus's
    assert [r["email"] for r in json.loads(one.stdout)["instructors"]] == [ADA]
    assert "Lovelace" not in officehours(config, "status", "--source", "roster").stdout


def test_history_shows_what_changed_where_and_when(sandbox: Sandbox, now: datetime) -> None:
    ids = seed(sandbox, ADA, now, next_session=3 * HOUR)
    seed(sandbox, BOB, now, next_session=3 * HOUR, pmi=8999999999)
    config = sandbox.write_config()
    assert officehours(config, "history").stdout.strip() == "nothing recorded"
    assert officehours(config, "sync").returncode == 0
    lines = officehours(config, "history", "--instructor", "ADA@example.edu").stdout
    assert "bob@" not in lines and lines.count("update-event") == 3
    assert f"event:{ids['series']}" in lines and "secure-pmi" in lines
    assert "pwd=***" in lines and "pwd=" + sandbox.zoom.user(ADA).join_url.split("pwd=")[1] \
        not in lines
    entries = json.loads(officehours(config, "history", "--since", "1h", "--json").stdout)
    assert len(entries) == 8 and {e["instructor"] for e in entries} == {ADA, BOB}
    assert json.loads(officehours(config, "history", "--since", "2099-01-01",
                                  "--json").stdout) == []
    wrong = officehours(config, "history", "--since", "last week")
    assert wrong.returncode == 2 and "span like 7d" in wrong.stderr


def test_no_secret_reaches_output_or_state(sandbox: Sandbox, now: datetime) -> None:
    seed(sandbox, ADA, now, next_session=timedelta(minutes=5))
    config = sandbox.write_config(log_level="debug")
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    passcode = sandbox.zoom.user(ADA).pmi_password
    pwd = sandbox.zoom.user(ADA).join_url.split("pwd=")[1]
    state = (Path(sandbox.dir) / "state" / "state.sqlite3").read_bytes()
    for secret in (sandbox.zoom_secret, passcode, pwd):
        assert secret not in result.stdout + result.stderr
        assert secret.encode() not in state


def test_retitled_and_back_with_a_new_link_updates_our_location(
        sandbox: Sandbox, now: datetime) -> None:
    """Found by the soak test (seed 21): memory of our location was dropped with the title."""
    ids = seed(sandbox, ADA, now, next_session=3 * HOUR, pmi_password="11111111")
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    sandbox.google.edit_event(ADA, ids["single"], summary="Exam (no office hours)")
    assert officehours(config, "sync").returncode == 0
    sandbox.zoom.user(ADA).pmi_password = "22222222"
    sandbox.google.edit_event(ADA, ids["single"], summary="Office Hours - review")
    assert officehours(config, "sync").returncode == 0
    event = sandbox.google.event(ADA, ids["single"])
    assert event["location"] == sandbox.zoom.user(ADA).join_url


def test_status_in_a_closed_pipe_ends_quietly(sandbox: Sandbox, now: datetime) -> None:
    for n in range(1500):  # rows enough to fill the pipe's buffer: `status` waits on it
        sandbox.add_instructor(f"Instructor {n}", f"i{n:04d}@example.edu", 8100000000 + n)
    config = sandbox.write_config()
    shown = subprocess.run(f"{sys.executable} -m daemon.cli --config {config} status | head -3",
                           shell=True, capture_output=True, text=True, timeout=60)
    assert len(shown.stdout.splitlines()) == 3
    assert "Traceback" not in shown.stderr and "BrokenPipe" not in shown.stderr, shown.stderr


def test_status_shows_an_offboarded_instructor_as_offboarded(
        sandbox: Sandbox, now: datetime) -> None:
    """Not with a next session and a secure room, as if still served."""
    seed(sandbox, ADA, now, next_session=3 * HOUR)
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    assert officehours(config, "remove-links", "--instructor", ADA).returncode == 0
    line = next(li for li in officehours(config, "status").stdout.splitlines() if ADA in li)
    cells = re.split(r"\s{2,}", line)
    assert cells[2:] == ["-", "offboarded", "-"], cells
