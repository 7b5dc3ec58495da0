"""The engine in-process with an injected clock: the lead window's exact edges."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import HOUR, at
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import Response

from daemon.app import open_engine
from daemon.config import load
from daemon.engine import Engine
from daemon.model import fingerprint
from daemon.store import Fenced

ADA = "ada@example.edu"


@pytest.fixture
def clock(now: datetime) -> list[datetime]:
    return [now]


@pytest.fixture
def engine(sandbox: Sandbox, now: datetime, clock: list[datetime]) -> Iterator[Engine]:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                             end=at(now + 2 * HOUR))
    config = load(sandbox.write_config(enforce_lead_minutes=15))
    made = open_engine(config, clock=lambda: clock[0])
    yield made
    made.close()


def zoom_writes(sandbox: Sandbox) -> list[str]:
    return [r.path for r in sandbox.zoom.requests("PATCH")]


def test_pmi_is_secured_at_first_sight_before_its_link_is_written(
        engine: Engine, sandbox: Sandbox, now: datetime, clock: list[datetime]) -> None:
    """Hours before the session: secured now, so the link students get is final; the
    pass inside the lead window checks again and writes no event."""
    (ada,) = engine.config.instructors
    result = engine.sync(ada)
    assert result.error is None and result.zoom.startswith("repaired")
    assert [e[3] for e in engine.state.audit_log()] == ["secure-pmi", "update-event"]
    (event_id,) = sandbox.google.events[ADA]
    final = sandbox.zoom.user(ADA).join_url
    assert "pwd=" in final and sandbox.google.event(ADA, event_id)["description"].count(final) == 1
    clock[0] = now + HOUR - timedelta(minutes=10)  # in the lead window
    result = engine.sync(ada)
    assert result.error is None and result.zoom == "secure" and result.changes == []


def test_pmi_is_checked_again_from_start_minus_lead_and_not_a_second_earlier(
        engine: Engine, sandbox: Sandbox, now: datetime, clock: list[datetime]) -> None:
    (ada,) = engine.config.instructors
    assert engine.sync(ada).error is None  # first sight
    user = sandbox.zoom.user(ADA)
    user.pmi_waiting_room = False  # someone opens the Personal Room in the portal
    patched = len(zoom_writes(sandbox))
    start = now + HOUR
    for moment in (start - timedelta(minutes=15, seconds=1), start + HOUR):  # before, after
        clock[0] = moment
        result = engine.sync(ada)
        assert result.error is None and result.zoom == ""
        assert len(zoom_writes(sandbox)) == patched
    clock[0] = start - timedelta(minutes=15)
    result = engine.sync(ada)
    assert result.zoom == "repaired (was insecure (waiting_room))"
    assert user.secure and zoom_writes(sandbox)[patched:] == ["/v2/meetings/8123456789"]


def test_a_lead_window_reads_zoom_once_not_at_every_pass_inside_it(
        engine: Engine, sandbox: Sandbox, now: datetime, clock: list[datetime]) -> None:
    """The pass inside a window secures the room once; later passes in the same window
    (and in the session) read no Zoom; the next session's window checks again. (Every pass
    in a window read the room: at 60 s passes on a 5,000 campus at 4 pm, 0.14 Zoom requests
    per instructor instead of 0.03.)"""
    (ada,) = engine.config.instructors
    start = now + HOUR
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(start + 24 * HOUR),
                             end=at(start + 25 * HOUR))
    assert engine.sync(ada).error is None  # first sight
    reads = len(sandbox.zoom.log)
    clock[0] = start - timedelta(minutes=14)  # the window is open: checked
    assert engine.sync(ada).zoom == "secure"
    assert len(sandbox.zoom.log) == reads + 3  # user, settings, PMI meeting
    for minutes in (-10, -1, 5, 59):  # later passes in the window, and in the session
        clock[0] = start + timedelta(minutes=minutes)
        result = engine.sync(ada)
        assert result.error is None and result.zoom == ""
    assert len(sandbox.zoom.log) == reads + 3
    clock[0] = start + timedelta(hours=24, minutes=-15)  # the next session's window
    assert engine.sync(ada).zoom == "secure"
    assert len(sandbox.zoom.log) == reads + 6


def test_a_pre_session_check_secures_the_room_before_reading_the_calendar(
        engine: Engine, sandbox: Sandbox, now: datetime, clock: list[datetime]) -> None:
    """A check reads Zoom first, so a slow calendar cannot make it late; when the room gives
    the link the invites carry, the calendar is left to the pass; when the link changed
    (a passcode set anew), the events follow at once. A pass in the window after it reads
    no Zoom again."""
    (ada,) = engine.config.instructors
    assert engine.sync(ada).error is None
    user = sandbox.zoom.user(ADA)
    user.pmi_waiting_room = False
    clock[0] = now + HOUR - timedelta(minutes=15, seconds=30)  # run early, spread
    marks = len(sandbox.google.log), len(sandbox.zoom.log)
    result = engine.sync(ada, secure_first=True)
    assert result.error is None and result.zoom.startswith("repaired") and user.secure
    assert len(sandbox.zoom.log) > marks[1] and len(sandbox.google.log) == marks[0]
    clock[0] = now + HOUR - timedelta(minutes=10)
    zoom_before = len(sandbox.zoom.log)
    assert engine.sync(ada).zoom == "" and len(sandbox.zoom.log) == zoom_before

    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 25 * HOUR),
                             end=at(now + 26 * HOUR))
    assert engine.sync(ada).error is None
    user.pmi_password = ""  # cleared in the portal: the repair sets a new one, a new link
    clock[0] = now + 25 * HOUR - timedelta(minutes=15)
    marks = len(sandbox.google.log), len(sandbox.zoom.log)
    result = engine.sync(ada, secure_first=True)
    assert result.error is None and user.secure
    calendar, zoom = sandbox.google.log[marks[0]:], sandbox.zoom.log[marks[1]:]
    assert calendar and zoom and zoom[-1].at < calendar[0].at  # Zoom done, then the events
    assert {e["description"].count(user.join_url)
            for e in sandbox.google.events[ADA].values()} == {1}


def test_an_instructor_without_office_hours_is_never_changed_in_zoom(
        engine: Engine, sandbox: Sandbox, now: datetime, clock: list[datetime]) -> None:
    (ada,) = engine.config.instructors
    (event_id,) = sandbox.google.events[ADA]
    sandbox.google.edit_event(ADA, event_id, summary="Faculty meeting")
    clock[0] = now + HOUR  # when the office hours would have been under way
    assert engine.sync(ada).error is None
    assert sandbox.zoom.requests() == []


def test_audit_log_records_each_write_with_masked_links(
        engine: Engine, sandbox: Sandbox, now: datetime, clock: list[datetime]) -> None:
    (ada,) = engine.config.instructors
    clock[0] = now + HOUR  # under way: secure (sets a passcode, so the link gains pwd=)
    assert engine.sync(ada).error is None
    entries = engine.state.audit_log()
    assert [e[3] for e in entries] == ["secure-pmi", "update-event"]
    assert "pwd=***" in entries[1][4]["change"]
    assert sandbox.zoom.user(ADA).join_url.split("pwd=")[1] not in str(entries)


def test_instructor_deleting_the_block_gets_it_back(
        engine: Engine, sandbox: Sandbox, tmp_path: Path) -> None:
    (ada,) = engine.config.instructors
    assert engine.sync(ada).error is None
    (event_id,) = sandbox.google.events[ADA]
    sandbox.google.edit_event(ADA, event_id, description="")
    assert len(engine.sync(ada).changes) == 1
    assert sandbox.google.event(ADA, event_id)["description"].count(
        sandbox.zoom.user(ADA).join_url) == 1


def test_a_refusal_is_logged_loudly_once_per_session(
        engine: Engine, sandbox: Sandbox, now: datetime, clock: list[datetime],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    (ada,) = engine.config.instructors
    sandbox.zoom.user(ADA).locked = {"waiting_room"}
    clock[0] = now + HOUR  # the session is under way
    for _ in range(3):
        assert engine.sync(ada).error is not None
    failures = [r for r in caplog.records if "action=pass" in r.getMessage()]
    assert [r.levelname for r in failures] == ["ERROR", "INFO", "INFO"]
    assert "Ada Lovelace" in failures[0].getMessage()
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 30 * HOUR),
                             end=at(now + 31 * HOUR))
    clock[0] = now + 30 * HOUR  # the next session: loud again
    assert engine.sync(ada).error is not None
    failures = [r for r in caplog.records if "action=pass" in r.getMessage()]
    assert failures[-1].levelname == "ERROR"


def test_office_hours_months_ahead_get_a_secured_link_the_first_time(
        sandbox: Sandbox, now: datetime, tmp_path: Path) -> None:
    """A term's office hours entered two months early: beyond the 35-day horizon of the
    schedule, yet the link written now must already be the final one."""
    sandbox.add_instructor("Grace Hopper", "grace@example.edu", 8234567890)
    start = now + timedelta(days=60)
    event = sandbox.google.add_event("grace@example.edu", summary="Office Hours",
                                     start=at(start), end=at(start + HOUR),
                                     recurrence=["RRULE:FREQ=WEEKLY;COUNT=10"])
    clock = [now]
    engine = open_engine(load(sandbox.write_config()), clock=lambda: clock[0])
    try:
        (grace,) = engine.config.instructors
        result = engine.sync(grace)
        assert result.error is None and result.zoom.startswith("repaired")
        final = sandbox.zoom.user("grace@example.edu").join_url
        assert final in sandbox.google.event("grace@example.edu", event)["description"]
        clock[0] = start - timedelta(minutes=5)  # in the first session's lead window
        engine.links.clear()
        result = engine.sync(grace)
        assert result.zoom == "secure" and result.changes == []
    finally:
        engine.close()


def test_a_link_about_to_be_written_is_secured_first(
        engine: Engine, sandbox: Sandbox, now: datetime) -> None:
    """Weeks after the first check someone cleared the passcode; then the instructor adds
    an event. The program secures the PMI before it writes the link into it."""
    (ada,) = engine.config.instructors
    assert engine.sync(ada).error is None
    user = sandbox.zoom.user(ADA)
    user.require_password_for_pmi_meetings, user.pmi_password = "none", ""
    engine.links.clear()  # the link cache has expired
    new = sandbox.google.add_event(ADA, summary="Office Hours - exam review",
                                   start=at(now + 5 * HOUR), end=at(now + 6 * HOUR))
    result = engine.sync(ada)
    assert result.error is None and result.zoom.startswith("repaired")
    assert user.secure and "pwd=" in user.join_url
    assert user.join_url in sandbox.google.event(ADA, new)["description"]
    secured = max(r.at for r in sandbox.zoom.requests("PATCH"))
    assert all(r.at > secured for r in sandbox.google.requests("PATCH", new))


def test_a_daily_limit_is_remembered_until_it_lifts(
        engine: Engine, sandbox: Sandbox, now: datetime, clock: list[datetime]) -> None:
    (ada,) = engine.config.instructors
    sandbox.zoom.fail("PATCH", "/v2/meetings/", Response(
        429, {"code": 429, "message": "daily"}, {"X-RateLimit-Type": "Daily-limit"}))
    first = engine.sync(ada)
    assert first.error is not None and "00:00 UTC" in first.error  # next UTC midnight
    asked = len(sandbox.zoom.requests())
    second = engine.sync(ada)
    assert second.error == first.error and len(sandbox.zoom.requests()) == asked
    assert sandbox.google.writes() == []  # no unsecured link was written meanwhile


def test_the_state_cannot_give_back_a_passcode_shown_in_invites(
        sandbox: Sandbox, now: datetime) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789, embed_password_in_join_link=False,
                           pmi_password="428571", require_password_for_pmi_meetings="all",
                           waiting_room=True)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                             end=at(now + 2 * HOUR))
    engine = open_engine(load(sandbox.write_config()))
    try:
        (ada,) = engine.config.instructors
        assert engine.sync(ada).error is None
        (known,) = engine.state.known_events(ada.key).values()
    finally:
        engine.close()
    url = sandbox.zoom.user(ADA).join_url
    guesses = {fingerprint(f"{url} passcode:{code}") for code in ("428571", "")}
    guesses |= {fingerprint(url), fingerprint(f"{url} 428571")}
    assert known.link_hash is not None and known.link_hash not in guesses


class Closed:
    """A node's fence once its lead is over: the state allows writes (one node on SQLite
    here), so only the wrappers made where the engine is built can stop the vendor's."""

    epoch = 3
    asked = 0

    def check(self) -> None:
        self.asked += 1
        raise Fenced("not written: the lead of epoch 3 is over")

    def revoke(self) -> None:
        pass


@pytest.mark.parametrize("room", ["secure", "open"])
def test_a_node_out_of_its_term_writes_to_no_calendar_and_no_zoom(
        sandbox: Sandbox, now: datetime, room: str) -> None:
    """The fence is applied where the engine is built (app.open_engine): every calendar
    write and every Zoom write asks it first, whatever path the engine takes (a secure
    room: only a link to write; an open one: a repair first)."""
    user = sandbox.add_instructor("Ada Lovelace", ADA, 8123456789,
                                  require_password_for_pmi_meetings="all",
                                  pmi_password="123456", waiting_room=True)
    user.pmi_waiting_room = room == "secure"
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                             end=at(now + 2 * HOUR))
    fence = Closed()
    engine = open_engine(load(sandbox.write_config()), fence=fence)
    try:
        result = engine.sync(engine.config.instructors[0])
    finally:
        engine.close()
    assert fence.asked >= 1 and result.changes == [] and result.error
    assert sandbox.google.writes() == [] and zoom_writes(sandbox) == []
    assert user.secure == (room == "secure")  # left as found: this node may not write


def test_a_changed_event_is_planned_once(sandbox: Sandbox, now: datetime,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Each changed event was planned twice (once to see whether a link is about to be
    written, once to write it): one state read too many per event."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    event = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                                     end=at(now + 2 * HOUR))
    engine = open_engine(load(sandbox.write_config()))
    try:
        ada = engine.config.instructors[0]
        assert engine.sync(ada).error is None
        sandbox.google.edit_event(ADA, event, summary="Office Hours - room 4")
        reads: list[str] = []
        known_event = engine.state.known_event

        def counted(instructor: str, event_id: str) -> object:
            reads.append(event_id)
            return known_event(instructor, event_id)

        monkeypatch.setattr(engine.state, "known_event", counted)
        result = engine.sync(ada)
    finally:
        engine.close()
    assert result.error is None and reads == [event]
