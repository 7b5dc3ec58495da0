"""`[zoom] events = "websocket"`: a room made insecure in the portal is secure again within
seconds, through Zoom's event stream (the emulator speaks Zoom's WebSocket protocol:
sandbox/officehours_sandbox/zoom_events.py), with the interval and the pre-session checks
far away; a PMI change reaches the invites; a dropped stream is re-established and what it
missed re-checked; frames that are not Zoom's are ignored with a log line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import conftest
import pytest
from conftest import HOUR, at, officehours, wait_for
from hypothesis import given
from hypothesis import strategies as st
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.zoom import ZoomUser
from officehours_sandbox.zoom_events import ZoomEvents

from daemon.reconcile import START_MARK
from daemon.zoom.events import MAX_FRAME, BadFrame, ZoomEvent, parse

ADA = "ada@example.edu"
MINUTE = timedelta(minutes=1)
QUICK = 10  # seconds: tamper to secure and read back (the bound)


class Running(conftest.Running):
    """`officehours run` with Zoom's events."""

    def __init__(self, sandbox: Sandbox, log: Path, subscription: str | None = None) -> None:
        self.hub = sandbox.zoom_events()
        # no pass and no pre-session check within the test: only an event can act; at
        # debug level, so that the secrets test below reads everything the program says
        config = sandbox.write_config(sync_interval_seconds=3600, enforce_lead_minutes=15,
                                      log_level="debug")
        if subscription is not None:
            config.write_text(config.read_text().replace(sandbox.subscription, subscription))
        super().__init__(config, log)


@pytest.fixture
def ada(sandbox: Sandbox, now: datetime) -> ZoomUser:
    """Ada, whose office hours started 5 minutes ago and come again in 2 days."""
    user = sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now - 5 * MINUTE),
                             end=at(now + HOUR), recurrence=["RRULE:FREQ=DAILY;INTERVAL=2"])
    return user


@pytest.fixture
def running(sandbox: Sandbox, ada: ZoomUser, tmp_path: Path) -> Iterator[Running]:
    service = Running(sandbox, tmp_path / "run.log")
    try:
        wait_for(lambda: ada.secure and len(sandbox.google.writes()) == 1
                 and service.hub.connected, what="the first pass and the stream")
        yield service
    finally:
        if service.process.poll() is None:
            service.stop()


TAMPERING = (("pmi_waiting_room", False),  # the Personal Room's own waiting room off
             ("pmi_password", ""),  # the passcode cleared
             ("require_password_for_pmi_meetings", "none"))  # the requirement off


def test_a_room_made_insecure_during_a_session_is_secure_again_within_seconds(
        sandbox: Sandbox, ada: ZoomUser, running: Running) -> None:
    for field, value in TAMPERING:
        # counted before the change: the check it sets off may read within milliseconds,
        # before this thread runs again on a busy machine
        reads, repairs = len(sandbox.zoom.requests("GET")), len(sandbox.zoom.writes())
        setattr(ada, field, value)
        wait_for(lambda: ada.secure, timeout=QUICK, what=f"{field} repaired by the event")
        assert len(sandbox.zoom.writes()) > repairs  # it was insecure: a repair made it so
        wait_for(lambda: len(sandbox.zoom.requests("GET")) >= reads + 6,  # noqa: B023
                 what="the repair read back")  # read, repaired, read again: 3 GETs each
    history = officehours(running.config, "history", "--instructor", ADA)
    assert history.stdout.count("zoom-event") >= 3, history.stdout
    assert running.said("action=zoom-event")


def test_a_session_ten_minutes_away_is_covered_too(sandbox: Sandbox, now: datetime,
                                                     tmp_path: Path) -> None:
    user = sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 10 * MINUTE),
                             end=at(now + HOUR))
    service = Running(sandbox, tmp_path / "run.log")
    try:
        wait_for(lambda: user.secure and service.hub.connected, what="the first pass")
        repairs = len(sandbox.zoom.writes())
        user.require_password_for_pmi_meetings = "none"  # in the portal's settings
        wait_for(lambda: user.secure, timeout=QUICK, what="the room secured by the event")
        assert len(sandbox.zoom.writes()) > repairs  # insecure until a repair
    finally:
        service.stop()


def test_a_pmi_changed_in_zoom_reaches_the_invites(sandbox: Sandbox, ada: ZoomUser,
                                                   running: Running) -> None:
    (event_id,) = sandbox.google.events[ADA]
    ada.pmi = 8999999999  # user.updated
    wait_for(lambda: "8999999999" in sandbox.google.event(ADA, event_id)["description"],
             timeout=QUICK, what="the new PMI in the invite")
    description = sandbox.google.event(ADA, event_id)["description"]
    assert description.count(START_MARK) == 1 and "8123456789" not in description


def test_a_dropped_stream_comes_back_checks_what_it_missed_and_ignores_bad_frames(
        sandbox: Sandbox, ada: ZoomUser, running: Running) -> None:
    hub = running.hub
    gap_checks = running.log.read_text().count("rooms-near-a-session=1")
    hub.drop()
    ada.pmi_waiting_room = False  # while no connection is open: never delivered
    assert hub.lost and not ada.secure
    wait_for(lambda: hub.connections >= 2, timeout=QUICK, what="the stream back")
    wait_for(lambda: ada.secure, timeout=QUICK, what="the session's room re-checked")
    wait_for(lambda: running.log.read_text().count("rooms-near-a-session=1") > gap_checks,
             what="the reconnection to pick the session's room")
    hub.garbage = '{"module": "message", "content": "{not json"}'
    ada.pmi_waiting_room = False
    wait_for(lambda: ada.secure, timeout=QUICK, what="the event after the bad frame")
    assert running.said("outcome=ignored")
    hub.garbage = json.dumps({"module": "message", "content": json.dumps({
        "event": "meeting.updated", "payload": {"object": {"id": "99999"}}})})
    ada.pmi_password = ""  # a frame for a room nobody serves, then a real event
    wait_for(lambda: ada.secure, timeout=QUICK, what="the real event")
    said = running.stop()  # the token rides in the stream's URL: never in the log
    assert sandbox.zoom.issued_tokens and not any(t in said for t in sandbox.zoom.issued_tokens)


# --- the frames, as a reader of vendor data: whatever arrives, BadFrame or a Frame ---

FRAME = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def event_frame(kind: str, obj: object) -> str:
    return json.dumps({"module": "message", "content": json.dumps(
        {"event": kind, "event_ts": 1, "payload": {"account_id": "a", "object": obj}})})


@given(st.one_of(st.text(max_size=200), FRAME.map(json.dumps),
                 st.builds(event_frame, st.sampled_from(["meeting.updated", "user.updated",
                                                         "meeting.started", "other"]), FRAME)))
def test_any_frame_is_read_or_refused_as_bad(message: str) -> None:
    try:
        frame = parse(message)
    except BadFrame:
        return
    event = frame.event
    assert event is None or (event.kind and len(event.user_id) <= 200
                             and len(event.meeting_id) <= 200)


def test_the_frames_zoom_sends_are_read() -> None:
    assert parse('{"module":"heartbeat","success":true,"content":"live","header":{}}'
                 ).module == "heartbeat"
    refused = parse('{"module":"build_connection","success":false,"content":"Invalid Token"}')
    assert not refused.success and refused.content == "Invalid Token"
    assert parse(event_frame("meeting.updated", {"id": 8123456789, "settings": {}})).event == \
        ZoomEvent("meeting.updated", "", "8123456789", "")
    assert parse(event_frame("user.settings_updated", {"id": "u1", "settings": {}})).event == \
        ZoomEvent("user.settings_updated", "u1", "", "")
    assert parse(event_frame("meeting.started", {"id": "8123456789", "host_id": "u1",
                                                 "type": 4})).event == \
        ZoomEvent("meeting.started", "u1", "8123456789", "")
    for bad in ("x" * (MAX_FRAME + 1), "[]", '{"module": 5}',
                event_frame("user.updated", {"pmi": 1}), event_frame("meeting.updated", [])):
        with pytest.raises(BadFrame):
            parse(bad)


def test_the_emulator_speaks_zoom_s_protocol(sandbox: Sandbox) -> None:
    """The emulator's own claims: a bad token is refused and closed with invalid_token; a
    heartbeat is answered "live"; a second connection closes the first; an event with
    nobody connected is lost."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from daemon.http import ssl_context

    hub: ZoomEvents = sandbox.zoom_events()
    user = sandbox.zoom.add_user(ADA, 8123456789)
    tls = ssl_context(sandbox.ca.bundle)
    token = "tok"
    sandbox.zoom.access_tokens[token] = 1e12  # valid for ever
    url = f"{hub.url}?subscriptionId={sandbox.subscription}&access_token="
    with connect(url + "wrong", ssl=tls, proxy=None) as refused:
        assert json.loads(refused.recv(timeout=5))["success"] is False
        with pytest.raises(ConnectionClosed) as closed:
            refused.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.reason == "invalid_token"
    user.pmi_waiting_room = False
    assert len(hub.lost) == 1
    with connect(url + token, ssl=tls, proxy=None) as first:
        assert json.loads(first.recv(timeout=5)) == {
            "module": "build_connection", "success": True, "content": "ok", "header": {}}
        first.send('{"module":"heartbeat"}')
        assert json.loads(first.recv(timeout=5))["content"] == "live"
        with connect(url + token, ssl=tls, proxy=None) as second:
            second.recv(timeout=5)
            with pytest.raises(ConnectionClosed):
                first.recv(timeout=5)
            user.pmi_waiting_room = True
            body = json.loads(json.loads(second.recv(timeout=5))["content"])
            assert body["event"] == "meeting.updated"
            assert body["payload"]["object"] == {"id": 8123456789, "host_id": user.id,
                                                 "settings": {"waiting_room": True}}


def test_doctor_connects_to_the_subscription_and_says_what_to_set_when_it_cannot(
        sandbox: Sandbox, ada: ZoomUser) -> None:
    hub = sandbox.zoom_events()
    config = sandbox.write_config()
    healthy = officehours(config, "doctor")
    assert "Zoom events" in healthy.stdout and "heartbeat answered" in healthy.stdout, \
        healthy.stdout
    assert hub.heartbeats == 1 and not hub.connected  # connected, answered, closed
    config.write_text(config.read_text().replace(sandbox.subscription, "not-the-subscription"))
    broken = officehours(config, "doctor")
    assert broken.returncode == 1
    line = next(x for x in broken.stdout.splitlines() if "Zoom events" in x)
    assert "refused the event subscription" in line, broken.stdout
    assert "Event Subscriptions: method WebSocket" in broken.stdout
    assert not any(t in broken.stdout + broken.stderr for t in sandbox.zoom.issued_tokens)


def test_status_and_the_metrics_say_whether_the_stream_is_up(
        sandbox: Sandbox, ada: ZoomUser, running: Running, tmp_path: Path) -> None:
    from daemon.app import writing
    from daemon.config import load

    status = officehours(running.config, "status")
    assert status.returncode == 0 and "Zoom events: connected since" in status.stdout
    running.stop()  # a clean stop: no stream, nothing to say
    assert "Zoom events" not in officehours(running.config, "status").stdout
    with writing(load(running.config)) as state:  # as a leader left it: down 5 minutes
        state.record_stream(False, datetime.now().astimezone() - 5 * MINUTE)
    down = officehours(running.config, "status")
    assert down.returncode == 1 and "Zoom events: DOWN since" in down.stdout, down.stdout
    assert json.loads(officehours(running.config, "status", "--json").stdout)[
        "zoom_events"]["down_too_long"] is True
    textfile = tmp_path / "officehours.prom"
    running.config.write_text(running.config.read_text()
                              + f'\n[metrics]\ntextfile = "{textfile}"\n')
    officehours(running.config, "sync")
    assert "officehours_zoom_events_up 0.0" in textfile.read_text()


def test_a_personal_room_starting_is_looked_at_once_more(
        sandbox: Sandbox, ada: ZoomUser, running: Running) -> None:
    object.__setattr__(ada, "pmi_waiting_room", False)  # a change no event told of
    assert not ada.secure
    running.hub.meeting_started(ada)  # meeting.started, type 4: students are arriving
    wait_for(lambda: ada.secure, timeout=QUICK, what="the room checked as it started")


def test_a_stream_that_never_connects_is_down_in_status(sandbox: Sandbox, ada: ZoomUser,
                                                        tmp_path: Path) -> None:
    service = Running(sandbox, tmp_path / "run.log", subscription="not-the-subscription")
    try:
        wait_for(lambda: service.said("connection refused"), what="Zoom's refusal")
        wait_for(lambda: "Zoom events: DOWN since" in officehours(
            service.config, "status").stdout, what="status to say so")
    finally:
        said = service.stop()
    assert not any(t in said for t in sandbox.zoom.issued_tokens)
