"""Zoom's account events over WebSocket (`[zoom] events = "websocket"`): the frames read
as Zoom sends them, and a stream that stays connected.

The protocol, as Zoom documents and samples it (sources quoted in
sandbox/officehours_sandbox/specs/zoom-websocket.md): connect to
`events_url?subscriptionId=...&access_token=...` with the app's OAuth token; the server
answers `{"module": "build_connection", "success": ...}`; send `{"module": "heartbeat"}`
every 30 s; an event is `{"module": "message", "content": "<the webhook body as a JSON
string>"}`. Events that happen while no connection is open are never delivered: after
each (re)connection the caller re-checks what it may have missed (`on_connect`).

Nothing in an event is trusted but which room it names: the room is read again from Zoom
(frames carry no signature). A frame that does not parse is logged and dropped.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from ..errors import ZoomError
from ..http import origin

log = logging.getLogger(__name__)
HEARTBEAT = 30.0  # seconds between heartbeats, as Zoom's samples send them
MAX_FRAME = 64 * 1024  # an event is a few hundred bytes; anything larger is not Zoom's
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0  # reconnect waits: doubling, with jitter
STEADY = 60.0  # a connection that held this long starts the next wait short again
# websockets logs the request line, whose query carries the token: never below WARNING
QUIET = logging.getLogger("daemon.zoom.events.websockets")
QUIET.setLevel(logging.WARNING)
# The events that call for a look at a room (the README names them for the Marketplace):
# its passcode or waiting room changed, the user's PMI settings or the PMI itself changed,
# or a PMI meeting started (a last check as students arrive)
WATCHED = ("meeting.updated", "user.settings_updated", "user.updated", "meeting.started")


@dataclass(frozen=True)
class ZoomEvent:
    """Which room an event is about, and nothing else from it."""

    kind: str  # e.g. "meeting.updated"
    user_id: str  # the Zoom user's id ("" when the event names a meeting only)
    meeting_id: str  # the meeting (a PMI, for the events that matter) ("" for user events)
    email: str  # when the event carries it ("" otherwise)
    # the room's security settings the event reports as changed to, (name, JSON value):
    # only to recognise an event that reports the room as it was last confirmed secure
    values: tuple[tuple[str, str], ...] = ()


class BadFrame(ValueError):
    """A frame that is not Zoom's (its text in the log, shortened)."""


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    text = str(value)
    return text if len(text) <= 200 else ""


@dataclass(frozen=True)
class Frame:
    module: str  # "build_connection", "heartbeat", "message", ...
    success: bool
    content: str  # a frame's own words (not an event's body), shortened
    event: ZoomEvent | None  # for a "message" frame of an event


def parse(message: str | bytes) -> Frame:
    """A frame as Zoom sends it: BadFrame when it is not a JSON object with a module, or
    an event frame whose content is not an event naming a user or a meeting."""
    if isinstance(message, bytes) or len(message) > MAX_FRAME:
        raise BadFrame("not a text frame of Zoom's size")
    try:
        frame = json.loads(message)
    except ValueError:
        raise BadFrame("not JSON") from None
    module = frame.get("module") if isinstance(frame, dict) else None
    if not isinstance(module, str) or len(module) > 64:
        raise BadFrame("no module")
    success, content = frame.get("success") is not False, frame.get("content")
    if module != "message":
        return Frame(module, success, _text(content)[:200], None)
    try:
        body = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        body = None
    payload = body.get("payload") if isinstance(body, dict) else None
    kind = body.get("event") if isinstance(body, dict) else None
    obj = payload.get("object") if isinstance(payload, dict) else None
    if not isinstance(kind, str) or not isinstance(obj, dict):
        raise BadFrame("an event without event, payload or object")
    if kind not in WATCHED:
        return Frame(module, success, "", ZoomEvent(kind[:64], "", "", ""))
    values = tuple(sorted(_security_values(obj)))[:8]
    if kind.startswith("user."):
        event = ZoomEvent(kind, _text(obj.get("id")), "", _text(obj.get("email")), values)
    else:
        event = ZoomEvent(kind, _text(obj.get("host_id")), _text(obj.get("id")), "", values)
    if not (event.user_id or event.meeting_id or event.email):
        raise BadFrame(f"{kind} naming no user or meeting")
    return Frame(module, success, "", event)


SECURITY = ("password", "pmi_password", "waiting_room", "require_password_for_pmi_meetings")


def _security_values(obj: dict[str, Any], depth: int = 0) -> set[tuple[str, str]]:
    """The security settings in an event's object, wherever Zoom nests them (settings,
    schedule_meeting, in_meeting), as (name, JSON value)."""
    found: set[tuple[str, str]] = set()
    for name, value in list(obj.items())[:64]:
        if isinstance(value, dict) and depth < 3:
            found |= _security_values(value, depth + 1)
        elif name in SECURITY and isinstance(value, str | bool) and len(str(value)) <= 64:
            found.add((name, json.dumps(value)))
    return found


class EventStream:
    """One connection to a subscription, kept open in a thread of its own: heartbeats,
    a token refreshed when Zoom refuses it, reconnection with backoff and jitter.

    `on_event` gets each event; `on_connect` is called after each connection is
    established (what happened while it was down was never delivered), `on_down` when
    an established one ends."""

    def __init__(self, url: str, subscription: str, token: Callable[[bool], str],
                 tls: ssl.SSLContext, proxy: str | None,
                 on_event: Callable[[ZoomEvent], None], on_connect: Callable[[], None],
                 on_down: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._url, self._subscription, self._token = url, subscription, token
        self._tls, self._proxy = tls, proxy
        self._on_event, self._on_connect, self._clock = on_event, on_connect, clock
        self._on_down = on_down
        self._stop = threading.Event()
        self._connection: ClientConnection | None = None
        self._thread = threading.Thread(target=self._run, name="zoom-events", daemon=True)
        self.down_since: float | None = clock()  # None while connected
        self.connections = 0
        self.ignored = 0  # frames dropped as not Zoom's
        self._was_up = False  # the last connection was established

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the stream; its callbacks are not called from now on. Quick, since the
        service's main loop (which feeds the watchdog) waits for it."""
        self._stop.set()
        connection = self._connection
        if connection is not None:
            connection.close()  # close_timeout: a dead network costs 2 s at most
        if self._thread.ident is not None:
            self._thread.join(timeout=3)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        wait, fresh = BACKOFF_FIRST, False
        while not self._stop.is_set():
            began = self._clock()
            try:
                fresh = self._session(fresh)
            except Exception as err:  # noqa: BLE001 - the stream must outlive any failure
                fresh = _refused_token(err)
                if self._stop.is_set():
                    return
                log.warning("action=zoom-events problem=%r outcome=reconnect-in=%.0fs",
                            _cause(err), wait)
            finally:
                self._connection = None
            if self._was_up and self._clock() - began >= STEADY:
                wait = BACKOFF_FIRST  # it held a while: the gap starts short again
            self._was_up = False
            if self.down_since is None:
                self.down_since = self._clock()
            if not self._stop.is_set():
                self._guarded(self._on_down)  # also when it never came up: said as down
            self._stop.wait(wait * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            wait = min(wait * 2, BACKOFF_MAX)

    def _guarded(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # a bug, or the database away: the stream goes on
            log.exception("action=zoom-events problem=callback-failed outcome=stream-goes-on")

    def _session(self, fresh: bool) -> bool:
        """One connection, until it ends; whether the next needs a fresh token."""
        with _connected(self._url, self._subscription, self._token(fresh), self._tls,
                        self._proxy, 15, self._opened) as connection:
            if self._stop.is_set():
                return False
            self.connections += 1
            self.down_since, self._was_up = None, True
            log.info("action=zoom-events outcome=connected subscription=%s",
                     self._subscription)
            if not self._stop.is_set():
                self._guarded(self._on_connect)
            self._listen(connection)
        return False

    def _opened(self, connection: ClientConnection) -> None:
        self._connection = connection  # stop() closes it, the handshake's wait included

    def _listen(self, connection: ClientConnection) -> None:
        """Frames until the connection ends; a heartbeat every HEARTBEAT seconds, and a
        connection that has said nothing (not even to a heartbeat) for two of them is
        taken as dead: a half-open TCP connection would otherwise look alive for long."""
        beat = heard = self._clock()
        connection.send('{"module":"heartbeat"}')
        while not self._stop.is_set():
            now = self._clock()
            if now - heard > 2 * HEARTBEAT:
                raise TimeoutError(f"nothing from Zoom for {now - heard:.0f} s")
            if now - beat >= HEARTBEAT:
                connection.send('{"module":"heartbeat"}')
                beat = now
            try:
                message = connection.recv(timeout=max(0.1, beat + HEARTBEAT - now))
            except TimeoutError:
                continue
            heard = self._clock()
            try:
                event = parse(message).event
            except BadFrame as err:
                self.ignored += 1
                log.warning("action=zoom-events problem=%r frame=%r outcome=ignored", str(err),
                            str(message)[:120])
                continue
            if event is not None and not self._stop.is_set():
                self._guarded(lambda: self._on_event(event))  # noqa: B023 - called at once


class Refused(Exception):
    """Zoom answered the connection with build_connection success false (its words)."""

    def __init__(self, said: str) -> None:
        super().__init__(f"connection refused: {said}")
        self.said = said


@contextmanager
def _connected(url: str, subscription: str, token: str, tls: ssl.SSLContext,
               proxy: str | None, timeout: float,
               opened: Callable[[ClientConnection], None] = lambda connection: None,
               ) -> Iterator[ClientConnection]:
    """A connection to the subscription that Zoom accepted (Refused if it did not)."""
    query = urlencode({"subscriptionId": subscription, "access_token": token})
    with connect(f"{url}?{query}", ssl=tls, proxy=proxy, open_timeout=timeout,
                 ping_interval=None, close_timeout=2, max_size=MAX_FRAME,
                 user_agent_header="officehours", logger=QUIET) as connection:
        opened(connection)
        answer = parse(connection.recv(timeout=timeout))
        if answer.module != "build_connection" or not answer.success:
            raise Refused(answer.content or answer.module)
        yield connection


def _refused_token(err: BaseException) -> bool:
    """Whether a failure says the token was refused (a fresh one is then of use)."""
    if isinstance(err, Refused):
        return "token" in err.said.lower()
    if isinstance(err, ConnectionClosed):
        return err.rcvd is not None and "token" in err.rcvd.reason
    if isinstance(err, InvalidStatus):
        return err.response.status_code in (401, 403)
    return False


def probe(url: str, subscription: str, token: str, tls: ssl.SSLContext,
          proxy: str | None, timeout: float = 10.0) -> str:
    """Connect to the subscription and have a heartbeat answered (doctor): what was
    seen, or ZoomError saying what failed. Reads only; the connection is closed again
    (on one connection per subscription, a running service's reconnects at once)."""
    try:
        with _connected(url, subscription, token, tls, proxy, timeout) as connection:
            connection.send('{"module":"heartbeat"}')
            for _ in range(4):  # events may come first; a heartbeat answer soon after
                if parse(connection.recv(timeout=timeout)).module == "heartbeat":
                    break
            else:
                raise ZoomError("Zoom's event stream answered no heartbeat")
    except Refused as err:
        raise ZoomError(f"Zoom refused the event subscription: {err.said}") from None
    except ZoomError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure is the check's answer
        raise ZoomError(f"Zoom's event stream at {origin(url)}: {_cause(err)}") from None
    return f"subscription {subscription} connected at {origin(url)}, heartbeat answered"


def _cause(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text.split("access_token=")[0][:200]  # the token is in the URL: never logged

